"""Answers that are not there must not count: a box cut off while being written, and multiple-choice
sentences, judged from a table of the ways chat models state (and do not state) an option."""

import pytest
import reasoning_gym

from pts.tasks.oracles import MathOracle, MultipleChoiceOracle, extract_choice, extract_math_answer, get_oracle
from pts.tasks.oracles.extract import ends_inside_box

# A response cut off inside \boxed{ (by the token budget, say) has no answer, whatever it holds so far.
CUT_OFF_IN_A_BOX = [
    ("So the result is \\boxed{3", "3"),
    ("So the result is $\\boxed{3", "3"),
    ("The answer is 3. To be sure: \\boxed{3", "3"),
    ("First \\boxed{2}. Wait, recheck: \\boxed{3", "3"),
    ("First \\boxed{3}. Wait, recheck: \\boxed{3", "3"),
    ("\\boxed{\\frac{1}{2}", "\\frac{1}{2}"),
    ("Thus \\fbox{12", "12"),
    ("#### 5\nand in a box \\boxed{6", "6"),
]


@pytest.mark.parametrize("completion, gold", CUT_OFF_IN_A_BOX)
def test_a_box_cut_off_is_no_answer(completion, gold):
    assert ends_inside_box(completion)
    # The #### line is an answer of its own, stated before the box.
    expected = "5" if completion.startswith("####") else None
    assert extract_math_answer(completion) == expected
    assert MathOracle().judge(completion, gold) is False
    # ...and early stop does not stop there: an earlier closed box or phrase is not the answer any more.
    assert MathOracle().answer_complete(completion) is completion.startswith("####")


@pytest.mark.parametrize(
    "completion, gold, expected",
    [
        ("So the result is \\boxed{3}", "3", True),
        ("So the result is \\boxed{3}.", "3", True),
        ("\\boxed{3} then \\boxed{4}", "4", True),
        ("braces closed inside: \\boxed{\\frac{1}{2}}", "0.5", True),
        ("an escaped brace \\boxed{\\{1, 2\\}}", "\\{1,2\\}", True),
    ],
)
def test_a_closed_box_is_still_the_answer(completion, gold, expected):
    assert not ends_inside_box(completion)
    assert MathOracle().judge(completion, gold) is expected


def test_reasoning_gym_ignores_a_box_cut_off():
    entry = reasoning_gym.create_dataset("chain_sum", size=1, seed=7, min_terms=2, max_terms=2, max_digits=1)[0]
    oracle = get_oracle("rg:chain_sum")
    assert oracle.judge(f"So the sum is \\boxed{{{entry['answer']}}}", entry)
    assert not oracle.judge(f"So the sum is \\boxed{{{entry['answer']}", entry)
    assert not oracle.answer_complete(f"So the sum is \\boxed{{{entry['answer']}")


# How chat models state their choice, each judged with gold (B): the letter named is the answer read.
STATED = [
    "The correct option is (B) because the sum of 2 and 2 is 4.",
    "The correct option is (b) because 2 + 2 = 4.",
    "The correct option is B because 2 + 2 = 4.",
    "The correct option is B) 4, because 2 + 2 = 4.",
    "The correct answer is (B) since the others are too large.",
    "The right answer is option B because it is the only even number.",
    "The best choice would be (B), as it fits every condition.",
    "The answer to this question is (B) because of the second law.",
    "Therefore, the correct answer is: **(B)** because it balances the equation.",
    "So the final answer is **B**, because the others contradict the premise.",
    "Correct answer: (B) - it is the only value that satisfies both equations.",
    "The answer should be (B) because 4 is even.",
    "I would choose (B) because it is the only even number.",
    "I'd go with B, since 4 is the only even option.",
    "Let's go with option (B) because the others fail the check.",
    "We select (B): it is the only one that works.",
    "(B) is correct because 2 + 2 = 4.",
    "(B) is the correct answer because the others are odd.",
    "B is correct because the others are odd.",
    "Option B is the right answer, since 4 is even.",
    "(B) 4 meters is the correct answer because distance = speed * time.",
    "Option (A) looks tempting, but the correct option is (B) because A ignores friction.",
    "(A) is wrong because 3 is odd. The correct option is (B) because 4 is even.",
    "Not (C): the correct answer is (B) because 4 is even.",
    "Checking (A): 3 is odd. Checking (B): 4 is even.\nThe correct option is (B) because it is even.",
    "The answer is (B) because 2 + 2 = 4.",
    "Answer: B",
]
# Sentences that name options without choosing exactly one: no answer, or another letter than (B).
NOT_STATED = [
    ("The correct option is not (B) because 4 is odd.", None),
    ("The answer is not (B).", None),
    ("(B) is not correct because 4 is odd.", None),
    ("Option B is not the right answer.", None),
    ("It is not option B.", None),
    ("Neither (A) nor (B) is correct.", None),
    ("I would not choose (B) because it is odd.", None),
    ("The correct answer is (A) or (B).", None),
    ("The correct options are (A) and (B).", None),
    ("The answer is either (A) or (B), I am not sure.", None),
    ("Either (A) or (B) is correct.", None),
    ("Option (A) says 3 and option (B) says 4; both look plausible.", None),
    ("I considered (B) because it seemed right, but I am unsure.", None),
    ("(B) because it is even? That does not settle it.", None),
    ("Options (A) and (B) look plausible, but the correct option is (C) because 5 is prime.", "C"),
    ("(B) is not correct; the correct answer is (D).", "D"),
    ("The answer is a number larger than 3, so the answer is (E).", "E"),
    ("A cat sat on the mat.", None),
    ("The correct answer is \\boxed{B", None),
    ("The correct answer is (B) and (D).", None),
]


@pytest.mark.parametrize("completion", STATED)
def test_a_stated_choice_is_read(completion):
    assert extract_choice(completion) == "B"
    assert MultipleChoiceOracle().judge(completion, "B") is True
    assert MultipleChoiceOracle().judge(completion, "C") is False


@pytest.mark.parametrize("completion, letter", NOT_STATED)
def test_options_named_but_not_chosen_are_not_an_answer(completion, letter):
    assert extract_choice(completion) == letter
    assert MultipleChoiceOracle().judge(completion, "B") is False


@pytest.mark.parametrize(
    "completion, expected",
    [
        ("The correct option is (B) because", True),
        ("The correct option is (B)", True),
        ("The correct option is (B", False),
        ("The correct option is B", False),
        ("I would choose (B) since", True),
        ("(B) is correct.", True),
        ("The correct option is not (B), ", False),
        ("Option (A) says 3, ", False),
        ("The answer is (B). \\boxed{B", False),
    ],
)
def test_multiple_choice_answer_complete(completion, expected):
    assert MultipleChoiceOracle().answer_complete(completion) is expected
