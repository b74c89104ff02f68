"""The project's own error for bad user input: it always names file, line and problem."""

from typing import Optional


class InputError(ValueError):
  """Bad input from a file or a flag.

  Attributes:
    path: the file (or flag name) the problem is in.
    line: 1-based line number, or None when the problem is not tied to a line.
    problem: what is wrong, in words a user can act on.
  """

  def __init__(self, path: str, problem: str, line: Optional[int] = None):
    self.path = str(path)
    self.line = line
    self.problem = problem
    where = self.path if line is None else f"{self.path}:{line}"
    super().__init__(f"{where}: {problem}")
