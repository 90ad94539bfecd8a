"""Secondary models: the image and 2-D GANs of SPEC section 6.

* a vanilla GAN and a Coulomb GAN on a 5 x 5 grid of Gaussians
  (:mod:`vawgan.gans.grid`),
* a DCGAN and a fully connected GAN on MNIST or, when no MNIST files are
  present, scikit-learn's bundled digits (:mod:`vawgan.gans.images`),
* BEGAN on the same digits (:mod:`vawgan.gans.began`),

with the metrics that tell a working GAN from a collapsed one
(:mod:`vawgan.gans.metrics`) and the plots (:mod:`vawgan.gans.plots`).
They share the speech pipeline's device handling, checkpoints, run logs and
configuration loader.
"""
