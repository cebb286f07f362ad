"""Sentence splitting (albert_keras/data/sentences.py): hand-made cases with known
answers, Chinese and English, and the spans point back into the raw text."""

import pytest

from albert_keras.data.sentences import sentence_spans, split_sentences


@pytest.mark.parametrize("text, expected", [
    ("土耳其三面环海：西面是爱琴海。北面是黑海！南面呢？是地中海。",
     ["土耳其三面环海：西面是爱琴海。", "北面是黑海！", "南面呢？", "是地中海。"]),
    ("他说：“你好。”然后走了。", ["他说：“你好。”", "然后走了。"]),  # the quote closes it
    ("“好吗？！”她问。结束", ["“好吗？！”", "她问。", "结束"]),
    ("第一句；第二句，还是第二句。", ["第一句；", "第二句，还是第二句。"]),
    ("（括号里的话。）后面", ["（括号里的话。）", "后面"]),
    ("The U.S. grew 3.14% in 2020. Then it fell! Why? Nobody knows",
     ["The U.S. grew 3.14% in 2020.", "Then it fell!", "Why?", "Nobody knows"]),
    ("It costs e.g. five dollars. so it does.", ["It costs e.g. five dollars. so it does."]),
    ('He said "stop." She stopped.', ['He said "stop."', "She stopped."]),
    ("北京是首都。Beijing is the capital. 上海呢？", ["北京是首都。", "Beijing is the capital.",
                                                 "上海呢？"]),
    ("没有句号的一句话", ["没有句号的一句话"]),
    ("  空白  。  ", ["空白  。"]),
    ("", []),
    ("。。。", ["。。。"]),
])
def test_known_splits(text, expected):
    assert split_sentences(text) == expected
    for (start, end), sentence in zip(sentence_spans(text), expected):
        assert text[start:end] == sentence
