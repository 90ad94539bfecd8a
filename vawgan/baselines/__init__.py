"""Peer systems the VAW-GAN is compared against (a joint-density GMM, as in sprocket)."""
