"""The README's Python example runs as written."""

import os
import re

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def test_readme_python_example_runs(capsys):
    text = open(README, encoding="utf-8").read()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README has no python example"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "(1, 6, 64) (1, 64)" in printed
    assert "sentence_order_accuracy" in printed


def test_the_chinese_readme_uses_the_english_readmes_commands():
    """README_zh.md gives the same commands: every line of its shell blocks is a line of
    README.md, so the two cannot drift apart."""
    zh = open(os.path.join(os.path.dirname(README), "README_zh.md"), encoding="utf-8").read()
    english = set(open(README, encoding="utf-8").read().splitlines())
    lines = [line for block in re.findall(r"```sh\n(.*?)```", zh, flags=re.S)
             for line in block.splitlines() if line.strip()]
    assert len(lines) > 20
    assert [line for line in lines if line not in english] == []
