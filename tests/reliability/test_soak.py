"""A short soak (the long one is `make soak`): steady load, churn and a broker drop; flat FDs and RSS."""

from __future__ import annotations

import pytest

from tests.reliability.scenarios import Resources
from tests.reliability.soak import MIB, Sample, SoakReport, soak

pytestmark = pytest.mark.timing


async def test_short_soak_is_flat() -> None:
    report = await soak(seconds=10.0, clients=10, sample_every=0.5, drop_every=4.0)
    print("\n" + report.table())
    assert report.drops >= 2 and report.cycles >= 10 and report.messages > 1000, report.table()
    assert report.check() == [], report.table()


def test_the_soak_verdict_catches_growth() -> None:
    def run(rss_step: int, fd_step: int) -> list[str]:
        report = SoakReport(20.0)
        for i in range(20):
            res = Resources(fds=40 + i * fd_step, tasks=10, threads=3, rss=60 * MIB + i * rss_step)
            report.samples.append(Sample(float(i), res, messages=100 * (i + 1)))
        return report.check()

    assert run(0, 0) == []
    assert any("RSS grew" in p for p in run(1 * MIB, 0))
    assert any("FD count grew" in p for p in run(0, 1))
