"""tools/readme_commands.py: the two set-up commands CI runs verbatim are
found in the README, and a README that would make CI run something else is
refused."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "readme_commands.py"
README = ROOT / "README.md"

if not SCRIPT.is_file():
    pytest.skip("tools/readme_commands.py is not beside the tests", allow_module_level=True)

spec = importlib.util.spec_from_file_location("readme_commands", SCRIPT)
readme_commands = importlib.util.module_from_spec(spec)
spec.loader.exec_module(readme_commands)
setup_commands = readme_commands.setup_commands


def test_the_readme_gives_the_main_job_then_the_tests():
    if not README.is_file():
        pytest.skip("README.md is not beside the tests")
    main_job, tests = setup_commands(README.read_text(encoding="utf-8"))
    assert readme_commands.main([]) == 0  # the script's default: this README
    assert main_job.startswith("pip install .") and main_job.endswith("seqcore train")
    assert tests.startswith("pip install") and "[test]" in tests and tests.endswith("pytest")


def test_blocks_after_the_first_section_heading_are_not_set_up_commands():
    text = "# p\n\n```bash\na && b\n```\n\ntext\n\n```\nc\n```\n\n## More\n\n```bash\nd\n```\n"
    assert setup_commands(text) == ["a && b", "c"]


@pytest.mark.parametrize("text, words", [
    ("# p\n```\na\n```\n## x\n", "found 1"),
    ("# p\n```\na\n```\n```\nb\n```\n```\nc\n```\n", "found 3"),
    ("# p\n```\na\nb\n```\n```\nc\n```\n", "code block 1"),
    ("# p\n```\na\n```\n```\n\n```\n", "code block 2"),
    ("# p\n```\na\n```\n```\nb\n", "not closed"),
])
def test_a_readme_ci_could_not_run_as_written_is_refused(text, words):
    with pytest.raises(ValueError, match=words):
        setup_commands(text)


def test_the_script_names_the_readme_and_exits_1_on_a_bad_one(tmp_path, capsys):
    bad = tmp_path / "README.md"
    bad.write_text("# p\n```\na\n```\n")
    assert readme_commands.main([str(bad)]) == 1
    assert str(bad) in capsys.readouterr().err
    assert readme_commands.main([str(tmp_path / "missing.md")]) == 1
