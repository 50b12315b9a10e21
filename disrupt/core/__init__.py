"""What :func:`disrupt.protect` runs: the budget, the pipeline (faces, crops, masks,
EOT, universal start), the objectives and the image transforms.

Imports :mod:`attacks` and :mod:`targets`, never the layers above (:mod:`disrupt.eval`,
:mod:`disrupt.bench`, :mod:`disrupt.api`, :mod:`disrupt.cli`).
"""
