"""A whole answer as the stream that would have carried it.

``response_chunks`` turns a ``ChatResponse`` into the internal chunks a
provider's stream would have produced for it: per choice, the role with any
reasoning and text, each tool call whole, then the finish reason, and last the
usage chunk. Any ``ChunkEncoder`` then writes them in the client's wire format,
so an answer obtained whole (a learned route's cascade) can be sent to a client
that asked for a stream. Pure: no I/O.
"""

from __future__ import annotations

from modelyard.types import ChatChunk, ChatResponse, ChoiceDelta, ToolCallDelta


def response_chunks(response: ChatResponse) -> list[ChatChunk]:
    """The chunks of ``response``, in the order a stream sends them."""
    r = response

    def chunk(delta: ChoiceDelta) -> ChatChunk:
        return ChatChunk(r.id, r.model, r.created, [delta])

    out: list[ChatChunk] = []
    for c in r.choices:
        out.append(chunk(ChoiceDelta(c.index, "assistant", c.content, c.reasoning)))
        if c.tool_calls:
            calls = [
                ToolCallDelta(i, t.id, t.name, t.arguments) for i, t in enumerate(c.tool_calls)
            ]
            out.append(chunk(ChoiceDelta(c.index, tool_calls=calls)))
        out.append(chunk(ChoiceDelta(c.index, finish_reason=c.finish_reason or "stop")))
    out.append(ChatChunk(r.id, r.model, r.created, [], usage=r.usage))
    return out
