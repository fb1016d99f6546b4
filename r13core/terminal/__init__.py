"""The admin terminal, without a screen, a keyboard or a socket (docs/terminal.md).

- :mod:`r13core.terminal.interpreter` — one line in, a reply out; history, completion;
- :mod:`r13core.terminal.commands` — each command as one call into r13core's audited
  operations (the same as the CLI's and the admin API's);
- :mod:`r13core.terminal.staging` — ``set``/``enable``/``disable`` staged, ``save`` as one
  change of the record;
- :mod:`r13core.terminal.session` — terminalMode, rows and cols obeyed; the protocol's
  messages;
- :mod:`r13core.terminal.editor` — raw mode's line editor (keystrokes in, echo out).

Front ends: `r13 term` (app/cli/term_cmd.py), ``GET /_dashboard/terminal``
(app/live/terminal.py).
"""

from r13core.terminal.interpreter import Interpreter, Reply, complete
from r13core.terminal.session import TerminalSession

__all__ = ["Interpreter", "Reply", "TerminalSession", "complete"]
