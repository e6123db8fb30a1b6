"""The learner's guide (docs/guide/*.md): every `>>>` example runs, with the output shown (Python's doctest)."""
import doctest
import importlib.util
from pathlib import Path

import pytest

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "guide"
CHAPTERS = sorted(GUIDE.glob("*.md"))


def test_the_guide_has_chapters():
    assert len(CHAPTERS) >= 8


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda path: path.name)
def test_chapter_examples_run(chapter):
    result = doctest.testfile(str(chapter), module_relative=False, verbose=False,
                              optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert result.failed == 0, (f"{chapter.name}: {result.failed} of {result.attempted} examples failed (see above); "
                                "if only printed source differs, run python docs/guide/update_sources.py")


def test_the_printed_code_is_the_current_code():
    """The chapters print the layers' code (inspect.getsource): update_sources.py would change nothing."""
    spec = importlib.util.spec_from_file_location("update_sources", GUIDE / "update_sources.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    stale = [chapter.name for chapter in CHAPTERS if module.refresh(chapter.read_text()) != chapter.read_text()]
    assert not stale, f"run python docs/guide/update_sources.py: {stale} print old code"
