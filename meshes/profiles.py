"""The shape of a recurved ("mushroom") projection: a narrow neck widening towards the head.

The outline is smooth: a foot fillet tangent to the foil surface (a sharp re-entrant corner
would be a stress singularity), a straight neck, a smoothstep widening to the head and an
elliptic cap with a horizontal tangent at the top.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RecurvedProfile:
    """The projection's half-width as a function of the height above the foil (any one unit).

    From the foil up: a quarter-circle foot fillet from half-width neck_width/2 + fillet_radius
    (tangent to the foil) to neck_width/2 at y = fillet_radius; a straight neck up to
    neck_height; a smoothstep widening (vertical tangents at both ends) to head_width/2 at
    `widest_height`; a quarter-ellipse cap closing at y = height. The cap is as tall as the head
    is half wide when there is room, else it takes half the height above the neck, so the cap
    always fits above the neck.
    """

    neck_width: float
    head_width: float
    height: float
    neck_height: float
    fillet_radius: float

    @property
    def cap_height(self) -> float:
        return min(self.head_width / 2, (self.height - self.neck_height) / 2)

    @property
    def widest_height(self) -> float:
        return self.height - self.cap_height

    def half_width(self, y: np.ndarray) -> np.ndarray:
        """Half-width of the projection at heights y in [0, height]."""
        y = np.asarray(y, dtype=float)
        neck, head = self.neck_width / 2, self.head_width / 2
        radius = self.fillet_radius
        fillet = neck + radius - np.sqrt(np.clip(radius**2 - (radius - y) ** 2, 0.0, None))
        rise = np.clip((y - self.neck_height) / (self.widest_height - self.neck_height), 0.0, 1.0)
        recurve = neck + (head - neck) * rise**2 * (3 - 2 * rise)
        cap_fraction = np.clip((y - self.widest_height) / self.cap_height, 0.0, 1.0)
        cap = head * np.sqrt(1 - cap_fraction**2)
        return np.select(
            [y <= radius, y <= self.neck_height, y <= self.widest_height],
            [fillet, np.full_like(y, neck), recurve],
            cap,
        )

    def area(self) -> float:
        """Cross-section area of the projection above the foil surface (closed form)."""
        neck, head = self.neck_width / 2, self.head_width / 2
        radius = self.fillet_radius
        fillet = (neck + radius) * radius - math.pi * radius**2 / 4
        straight = neck * (self.neck_height - radius)
        # The smoothstep averages to one half over its rise.
        recurve = (neck + head) / 2 * (self.widest_height - self.neck_height)
        cap = math.pi * head * self.cap_height / 4
        return 2 * (fillet + straight + recurve + cap)

    def right_outline(self, point_count: int) -> tuple[np.ndarray, np.ndarray]:
        """`point_count` points evenly spaced in arc length along the right half of the outline.

        From the right foot (neck_width/2 + fillet_radius, 0) to the top (0, height), x measured
        from the projection's axis. The fillet and the cap are sampled by angle, where x(y) has
        an infinite slope.
        """
        neck, head = self.neck_width / 2, self.head_width / 2
        radius = self.fillet_radius
        dense = 2000
        fillet_angle = np.linspace(0, math.pi / 2, dense)
        neck_y = np.linspace(radius, self.neck_height, dense)
        recurve_y = np.linspace(self.neck_height, self.widest_height, dense)
        cap_angle = np.linspace(0, math.pi / 2, dense)
        x = np.concatenate(
            [
                neck + radius - radius * np.sin(fillet_angle),
                np.full(dense, neck)[1:],
                self.half_width(recurve_y)[1:],
                head * np.cos(cap_angle)[1:],
            ]
        )
        y = np.concatenate(
            [
                radius - radius * np.cos(fillet_angle),
                neck_y[1:],
                recurve_y[1:],
                self.widest_height + self.cap_height * np.sin(cap_angle)[1:],
            ]
        )
        arc = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(x), np.diff(y)))])
        targets = np.linspace(0.0, arc[-1], point_count)
        outline_x, outline_y = np.interp(targets, arc, x), np.interp(targets, arc, y)
        # Pin the ends exactly: they are shared with the foil surface and the mirrored half.
        outline_x[0], outline_y[0] = neck + radius, 0.0
        outline_x[-1], outline_y[-1] = 0.0, self.height
        return outline_x, outline_y

    def undercut_area(self) -> float:
        """Area within the head's half-width, below its widest point, not taken by the projection.

        This is the pocket the binder has to fill to anchor the layer.
        """
        y = np.linspace(0.0, self.widest_height, 20001)
        gap = np.clip(self.head_width / 2 - self.half_width(y), 0.0, None)
        return float(2 * np.sum((gap[1:] + gap[:-1]) / 2 * np.diff(y)))
