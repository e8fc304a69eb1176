from colorcli.errors import first_line, printable


def test_printable_escapes_what_could_break_a_line_or_drive_a_terminal():
    assert printable("bad\nname\x1b[2J\r.jpg") == "bad\\nname\\x1b[2J\\r.jpg"
    assert printable("evil\u202egpj.exe") == "evil\\u202egpj.exe"  # right-to-left override
    assert printable("a\u2028b") == "a\\u2028b"  # line separator


def test_printable_keeps_names_people_write():
    for name in ("café.jpg", "旅行\u3000写真.jpg", "👨\u200d👩\u200d👧.png", "grand-mère (1952).tif"):
        assert printable(name) == name


def test_first_line_of_a_message_or_its_type():
    assert first_line(ValueError("one\ntwo")) == "one"
    assert first_line(ValueError()) == "ValueError"


def test_a_long_first_line_is_cut_after_a_whole_word_and_says_so():
    text = "Weights only load failed. In PyTorch 2.6, we changed the default value of the `weights_only` argument"
    assert first_line(ValueError(text), limit=60) == "Weights only load failed. In PyTorch 2.6, we changed the ..."
    assert first_line(ValueError(text), limit=len(text)) == text
    assert first_line(ValueError("one two"), limit=3) == "one ..."
    assert first_line(ValueError("x" * 50), limit=10) == "x" * 10 + " ..."
