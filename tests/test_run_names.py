"""Child run names: a sweep job's swept values in short form, so MLflow's run list shows them whole."""
from pipeline.sweep import short_run_name, swept_part


def test_keys_lose_their_group_and_numbers_their_trailing_zeros():
    assert short_run_name(["train.lr=1.0", "train.window=5"]) == "lr=1,window=5"
    assert short_run_name(["loss=neg_sampling", "train.K=5"]) == "loss=neg_sampling,K=5"
    assert short_run_name(["train.lr=0.30", "train.seed=007"]) == "lr=0.3,seed=7"
    assert short_run_name(["train.lr=1e-05", "+train.extra=2.50"]) == "lr=1e-05,extra=2.5"


def test_keys_whose_last_part_is_ambiguous_keep_their_group():
    assert short_run_name(["corpus.min_count=5", "train.min_count=2", "train.dim=10"]) == (
        "corpus.min_count=5,train.min_count=2,dim=10")


def test_values_that_are_not_plain_numbers_stay_as_written():
    assert short_run_name(["train.dtype=float32", "corpus=text", "train.lr=inf", "train.lr_schedule=null"]) == (
        "dtype=float32,corpus=text,lr=inf,lr_schedule=null")


def test_only_the_swept_overrides_name_a_child():
    job = ["train.iterations=200", "train.lr=0.1", "train.seed=1"]
    assert short_run_name(swept_part(job, ["train.lr", "train.seed"])) == "lr=0.1,seed=1"
