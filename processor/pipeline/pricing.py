"""Server-side pricing: a cost for every LLM call that arrives without one.

Peers' instrumentations (the official OpenTelemetry GenAI ones, OpenLLMetry, OpenInference)
report tokens but no cost. :class:`CallPricer` prices such calls with the shared table of
:mod:`llmpulse.contract.pricing` (the function the instrumentation uses, so both sides agree),
cache-aware, and names the table in ``pricing_version``. A call that carries its own cost keeps it.

What stays without a cost (``cost_usd`` None): a call whose model the table does not know, and
a successful call that reports no token counts at all (its cost cannot be known). Only the
successful ones count as unpriced (:mod:`llmpulse.processor.metrics.derived`); a failed call to a
known model with no tokens costs 0.
"""

from __future__ import annotations

from llmpulse.contract.pricing import PricingSource, PricingTable
from llmpulse.processor.metrics import names as M
from llmpulse.processor.pipeline.records import LLMCall


class CallPricer:
    """Prices calls without a cost from ``source``; :meth:`begin` once per batch picks the table."""

    __slots__ = ("source", "table", "version")

    def __init__(self, source: PricingSource | None = None) -> None:
        self.source = source if source is not None else PricingSource()
        self.table: PricingTable = self.source.current()
        self.version = self.table.version

    def begin(self) -> None:
        """Take the table in force now (the override file may have changed)."""
        table = self.source.current()
        if table is not self.table:
            self.table = table
            self.version = table.version

    def price(self, call: LLMCall) -> None:
        """Set ``call.cost_usd`` and ``call.pricing_version`` when the call has no cost."""
        tokens_in, tokens_out = call.input_tokens, call.output_tokens
        if tokens_in is None and tokens_out is None and call.outcome != M.OUTCOME_ERROR:
            return  # no usage reported: a cost of 0 would be a guess
        table = self.table
        price = table.price(call.response_model) if call.response_model else None
        if price is None:
            price = table.price(call.model)
            if price is None:
                return
        cache_read, cache_write = call.cache_read_tokens, call.cache_creation_tokens
        if cache_read or cache_write:
            call.cost_usd = price.cost(
                tokens_in or 0,
                tokens_out or 0,
                cache_read or 0,
                cache_write or 0,
                call.cache_creation_1h_tokens or 0,
            )
        else:  # Price.cost without cache tokens, term for term: its zero terms add exactly nothing
            call.cost_usd = (tokens_in or 0) * price.input + (tokens_out or 0) * price.output
        call.pricing_version = self.version
