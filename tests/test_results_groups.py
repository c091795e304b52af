"""The one grouping of trials behind `results summarize` and `results compare`."""

import pandas as pd

from dipddpm.analysis.groups import groups


def test_groups_sort_keep_nulls_as_their_own_group_and_name_them_none():
    t = pd.DataFrame({"sched": ["b", None, "a", "b"], "k": [1, 1, 2, 1], "v": [1, 2, 3, 4]})
    got = [(key, list(g["v"])) for key, g in groups(t, ["sched", "k"])]
    assert got == [({"sched": "a", "k": 2}, [3]), ({"sched": "b", "k": 1}, [1, 4]),
                   ({"sched": None, "k": 1}, [2])]
    assert [(key, len(g)) for key, g in groups(t, [])] == [({}, 4)]
