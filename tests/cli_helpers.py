"""Running the `rarity` command in-process, and what a bad-input failure must look like."""

from __future__ import annotations

from rarity_score.cli import main


def run_cli(capsys, *argv: object) -> tuple[int, str, str]:
    """``main(argv)``: exit code, stdout, stderr."""
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, out: str, err: str, *fragments: str) -> None:
    """Exit 2, nothing on stdout, one ``rarity: error:`` line holding every fragment."""
    assert code == 2, err
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("rarity: error: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
