"""Encoder, decoder and critic of VAW-GAN (see :mod:`vawgan.models.networks`)."""

from vawgan.models.networks import Critic, Decoder, Encoder, build_models, encoder_input_dim, mlp

__all__ = ["Encoder", "Decoder", "Critic", "build_models", "encoder_input_dim", "mlp"]
