"""The official SQuAD 1.1 / 2.0 evaluation, as a program:

    python -m training.evaluate_squad DATA_JSON PREDICTIONS_JSON [--na_prob_file NULL_ODDS_JSON]

The rules live in albert_keras/tasks/question_answering/official_eval.py."""

import sys

from albert_keras.tasks.question_answering.official_eval import main

if __name__ == "__main__":
    sys.exit(main())
