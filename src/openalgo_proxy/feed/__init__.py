"""The feed side: one broker adapter behind one XPUB on the bus (`shell`), its per-topic state
(`topic_table`), the check that drops impossible broker values (`sanity`), its metrics and status
endpoint (`metrics`), and the standby that takes a broker account over when the active feed falls
silent (`standby`)."""

from openalgo_proxy.feed.shell import Feed

__all__ = ["Feed"]
