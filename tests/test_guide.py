"""The learner's guide (docs/guide/*.md): every `>>>` example runs, with the output shown (Python's doctest)."""
import doctest
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
    assert result.failed == 0, f"{chapter.name}: {result.failed} of {result.attempted} examples failed (see above)"
