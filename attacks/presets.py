"""The built-in attacks: named settings of :func:`attacks.loop.run_attack`, not copies of it.

Every preset takes the budget ``eps`` in ``[0, 1]`` pixel units (``8/255``) and returns
an :class:`~attacks.loop.Attack`.

Default step size. For the iterative presets ``alpha`` defaults to
``default_alpha(eps, steps) = min(eps, 2.5 * eps / steps)``, which is ``eps / 4`` at the
default 10 steps. The steps then add up to 2.5 ``eps``: enough to cross the whole
ball (diameter 2 ``eps``) from a random start with room to correct, the usual PGD
rule of thumb (Madry et al. 2018). Ruiz et al. used ``eps = 0.05``, step ``0.01`` and
10 steps on the ``[-1, 1]`` scale: ``alpha = eps / 5``, a total travel of 2 ``eps``,
close to this. Scaling with ``steps`` keeps the total travel fixed, so 100 steps take
small steps instead of oscillating at the boundary with ``eps / 4`` strides.
"""

from __future__ import annotations

from attacks.loop import Attack, Norm
from attacks.registry import register_attack


def default_alpha(eps: float, steps: int) -> float:
    """Step size used when ``alpha`` is not given: ``min(eps, 2.5 * eps / steps)``."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    return min(eps, 2.5 * eps / steps)


@register_attack("fgsm")
def fgsm(eps: float, norm: Norm = "linf") -> Attack:
    """FGSM: one full step of size eps along the gradient's sign (Goodfellow et al. 2015)."""
    return Attack(eps=eps, alpha=eps, steps=1, norm=norm, name="fgsm")


@register_attack("ifgsm")
def ifgsm(eps: float, alpha: float | None = None, steps: int = 10, norm: Norm = "linf") -> Attack:
    """I-FGSM: iterated FGSM from the clean image (Kurakin et al. 2017; Ruiz et al.'s attack)."""
    a = default_alpha(eps, steps) if alpha is None else alpha
    return Attack(eps=eps, alpha=a, steps=steps, norm=norm, name="ifgsm")


@register_attack("pgd")
def pgd(eps: float, alpha: float | None = None, steps: int = 10, norm: Norm = "linf") -> Attack:
    """PGD: I-FGSM from a random point of the eps-ball (Madry et al. 2018)."""
    a = default_alpha(eps, steps) if alpha is None else alpha
    return Attack(eps=eps, alpha=a, steps=steps, norm=norm, random_start=True, name="pgd")


@register_attack("mifgsm")
def mifgsm(
    eps: float,
    alpha: float | None = None,
    steps: int = 10,
    decay: float = 1.0,
    norm: Norm = "linf",
) -> Attack:
    """MI-FGSM: I-FGSM with gradient momentum, for transfer (Dong et al. 2018)."""
    a = default_alpha(eps, steps) if alpha is None else alpha
    return Attack(eps=eps, alpha=a, steps=steps, norm=norm, decay=decay, name="mifgsm")
