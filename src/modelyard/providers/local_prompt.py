"""Chat requests as text for the embedded base model, and text back as answers.

The Gemma 3 270M shipped with modelyard is a pre-trained (base) model: it has
no chat template and was never taught turns; it continues text. A chat
therefore becomes a transcript it can continue: a one-line header, the
client's instructions, a few worked examples, the conversation as ``User:`` /
``Assistant:`` lines, and a trailing ``Assistant:``. Generation stops where the
model would begin the next turn (``STOPS``).

What the model cannot do is said to the client, not papered over: images and
a forced tool call are refused with ``InvalidRequestError``. Tools and JSON
mode are described in plain words; JSON mode also opens the answer with ``{``.

Pure functions only: no model, no threads. Those live in ``local``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from modelyard.errors import InvalidRequestError
from modelyard.types import ChatRequest, Message, NamedToolChoice

HEADER = (
    "A conversation between a user and a helpful, knowledgeable assistant. "
    "The assistant answers accurately and concisely."
)

# Worked examples, chosen by trying real questions on the model: a multi-line
# answer first (so the model knows answers may span lines), short factual and
# arithmetic ones nearest the question (the model copies the nearest style).
EXAMPLES: tuple[tuple[str, str], ...] = (
    (
        "Write a short poem about rain.",
        "Soft rain on the roof,\na quiet song for the night,\nthe garden drinks deep.",
    ),
    ("Hello!", "Hello! How can I help you today?"),
    ("Who painted the Mona Lisa?", "The Mona Lisa was painted by Leonardo da Vinci."),
    ("What is 3 + 5?", "3 + 5 = 8."),
)

USER = "User:"
ASSISTANT = "Assistant:"

#: where the model would begin another turn, or has lost the thread
STOPS: tuple[str, ...] = ("\nUser:", "\nAssistant:", "\n\n\n")

#: appended to the header when the model has twice answered nothing
NUDGE = "The assistant always replies with at least one full sentence."


@dataclass(frozen=True, slots=True)
class ChatPrompt:
    """The text the model continues, where to stop, and what opens the answer."""

    text: str
    stop: list[str] = field(default_factory=list)
    #: text already put in the model's mouth (the end of ``text``), part of the answer
    prefix: str = ""


def chat_prompt(req: ChatRequest, *, nudge: bool = False) -> ChatPrompt:
    """Format a chat request as a transcript a base model continues."""
    _refuse_unsupported(req)
    instructions = [m.text().strip() for m in req.messages if m.role in ("system", "developer")]
    instructions += _tool_lines(req)
    prefix = ""
    fmt = req.response_format
    if fmt is not None and fmt.type != "text":
        instructions.append("The assistant replies with one JSON object and nothing else.")
        if fmt.json_schema is not None and fmt.json_schema.json_schema is not None:
            schema = json.dumps(fmt.json_schema.json_schema, separators=(",", ": "))
            instructions.append(f"The JSON object follows this JSON schema: {schema}")
        prefix = "{"
    if nudge:
        instructions.append(NUDGE)

    head = HEADER
    if any(instructions):
        head += "\n\n" + "\n".join(line for line in instructions if line)
    turns = [f"{USER} {q}\n{ASSISTANT} {a}" for q, a in EXAMPLES]
    turns += _turns(req.messages)
    turns.append(f"{ASSISTANT} {prefix}" if prefix else ASSISTANT)
    # a user's turn opens an exchange after a blank line; the assistant answers on the next
    text = head + "".join(("\n" if t.startswith(ASSISTANT) else "\n\n") + t for t in turns)
    return ChatPrompt(text=text, stop=stop_strings(req.stop_list), prefix=prefix)


def stop_strings(client_stops: list[str]) -> list[str]:
    """The transcript's turn boundaries plus the client's own stops, no duplicates."""
    return list(dict.fromkeys([*STOPS, *(s for s in client_stops if s)]))


def _refuse_unsupported(req: ChatRequest) -> None:
    for i, message in enumerate(req.messages):
        if message.has_image:
            raise InvalidRequestError(
                f"messages[{i}] holds an image; this model reads text only",
                param=f"messages.{i}.content",
            )
    if req.tool_choice == "required" or isinstance(req.tool_choice, NamedToolChoice):
        raise InvalidRequestError(
            "this model cannot call tools; tool_choice must be 'auto' or 'none'",
            param="tool_choice",
        )


def _tool_lines(req: ChatRequest) -> list[str]:
    if not req.tools or req.tool_choice == "none":
        return []
    lines = ["The user's application offers these tools (the assistant may mention them):"]
    for tool in req.tools:
        fn = tool.function
        lines.append(f"- {fn.name}: {fn.description}" if fn.description else f"- {fn.name}")
    return lines


def _turns(messages: list[Message]) -> list[str]:
    """The conversation as transcript lines; system messages went to the header."""
    tool_names: dict[str, str] = {}
    turns: list[str] = []
    for message in messages:
        if message.role in ("system", "developer"):
            continue
        text = message.text().strip()
        if message.role == "user":
            turns.append(f"{USER} {text}")
        elif message.role == "assistant":
            said = [text] if text else []
            for call in message.tool_calls or []:
                tool_names[call.id] = call.function.name
                said.append(f"(calls tool {call.function.name} with {call.function.arguments})")
            turns.append(f"{ASSISTANT} {' '.join(said)}")
        else:  # tool
            name = tool_names.get(message.tool_call_id or "", "a tool")
            turns.append(f"{USER} (result of {name}) {text}")
    return turns
