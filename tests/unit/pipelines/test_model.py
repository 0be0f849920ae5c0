"""The two-tower model, its loss and metrics, checkpoints, re-batching and the training loop."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from jobs.runtime.checkpoints import CheckpointStore, load_model
from pipelines import model as M
from pipelines import train as T
from pipelines.errors import ConfigError

pytestmark = pytest.mark.unit
CPU = torch.device("cpu")

L = 6


def config(**kw: object) -> M.ModelConfig:
    base: dict = {"num_items": 20, "num_categories": 5, "history_length": L, "dim": 8, "item_embedding_dim": 8,
                  "category_embedding_dim": 4, "heads": 2, "dropout": 0.0}  # fmt: skip
    base.update(kw)
    return M.ModelConfig(**base)


def tiny_model(**kw: object) -> M.TwoTower:
    torch.manual_seed(0)
    cfg = config(**kw)
    return M.TwoTower(cfg, torch.arange(cfg.num_items) % cfg.num_categories).eval()


def histories(lengths: list[int], fill: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    items = torch.randint(2, 20, (len(lengths), L), generator=gen)
    types = torch.randint(1, 5, (len(lengths), L), generator=gen)
    ages = torch.randint(1, 10**6, (len(lengths), L), generator=gen)
    hist_len = torch.tensor(lengths)
    mask = M.history_mask(hist_len, L)
    return {
        "hist_item_idx": torch.where(mask, items, torch.full_like(items, fill)),
        "hist_type_idx": torch.where(mask, types, torch.full_like(types, fill)),
        "hist_age_s": torch.where(mask, ages, torch.full_like(ages, fill)),
        "hist_len": hist_len,
    }


@pytest.mark.parametrize("encoder", ["transformer", "mean"])
def test_towers_give_unit_vectors_of_the_configured_size(encoder: str) -> None:
    model = tiny_model(encoder=encoder)
    h = histories([1, 3, L])
    users = model.user_vectors(
        h["hist_item_idx"], h["hist_type_idx"], h["hist_age_s"], h["hist_len"]
    )
    items = model.item_vectors(torch.tensor([2, 3]))
    assert (
        users.shape == (3, 8)
        and items.shape == (2, 8)
        and model.all_item_vectors().shape == (20, 8)
    )
    assert torch.allclose(users.norm(dim=1), torch.ones(3), atol=1e-5)


@pytest.mark.parametrize("encoder", ["transformer", "mean"])
def test_padding_never_affects_user_vectors(encoder: str) -> None:
    model = tiny_model(encoder=encoder)

    def users(h: dict[str, torch.Tensor]) -> torch.Tensor:
        return model.user_vectors(
            h["hist_item_idx"], h["hist_type_idx"], h["hist_age_s"], h["hist_len"]
        )

    full = histories([L, L, L])  # every position holds a real-looking event (same seed as below)
    padded = histories([2, 4, 1])  # the same events, zero-padded after hist_len
    truncated = dict(full, hist_len=torch.tensor([2, 4, 1]))  # same lengths, non-zero "padding"
    assert torch.allclose(users(padded), users(truncated), atol=1e-6)
    # ... while one more real event does change the vector
    longer = dict(full, hist_len=torch.tensor([3, 4, 1]))
    assert not torch.allclose(users(truncated)[0], users(longer)[0], atol=1e-4)


def test_an_empty_history_gives_a_finite_vector() -> None:
    model = tiny_model()
    h = histories([0])
    users = model.user_vectors(
        h["hist_item_idx"], h["hist_type_idx"], h["hist_age_s"], h["hist_len"]
    )
    assert torch.isfinite(users).all()


def test_embedding_gradients_are_sparse() -> None:
    model = tiny_model().train()
    h = histories([2, 3])
    users, items = model({**h, "target_item_idx": torch.tensor([4, 5])})
    (users * items).sum().backward()
    assert (
        model.item_embedding.weight.grad.is_sparse
        and model.category_embedding.weight.grad.is_sparse
    )
    assert all(not p.grad.is_sparse for p in model.dense_parameters() if p.grad is not None)


def _softmax_ce(logits: list[float], target: int) -> float:
    m = max(logits)
    return -(logits[target] - m - math.log(sum(math.exp(x - m) for x in logits)))


def test_loss_matches_a_hand_computed_case() -> None:
    users = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    items = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    targets = torch.tensor([10, 11, 12])
    weights = torch.tensor([1.0, 0.5, 0.25])
    log_q = torch.tensor([-1.0, -2.0, -3.0])
    T_ = 0.5
    got = M.sampled_softmax_loss(users, items, targets, weights, log_q, T_)
    dots = [[1.0, 0.6, 0.0], [0.0, 0.8, 1.0], [0.6, 1.0, 0.8]]
    per_row = [
        _softmax_ce([dots[i][j] / T_ - log_q[j].item() for j in range(3)], i) for i in range(3)
    ]
    expected = (
        sum(w * loss for w, loss in zip(weights.tolist(), per_row, strict=True))
        / weights.sum().item()
    )
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_logq_correction_penalises_frequent_items_as_negatives() -> None:
    users = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    items = torch.tensor([[1.0, 0.0], [0.7071, 0.7071]])
    targets, weights = torch.tensor([3, 4]), torch.ones(2)
    plain = M.sampled_softmax_loss(users, items, targets, weights, torch.zeros(2), 1.0)
    # item 4 is very frequent: log q high -> its logit as a negative for row 0 drops -> row 0 easier
    corrected = M.sampled_softmax_loss(
        users, items, targets, weights, torch.tensor([0.0, 5.0]), 1.0
    )
    row0_plain = _softmax_ce([1.0, 0.7071], 0)
    row0_corr = _softmax_ce([1.0 - 0.0, 0.7071 - 5.0], 0)
    row1_plain = _softmax_ce([0.0, 0.7071], 1)
    row1_corr = _softmax_ce([0.0 - 0.0, 0.7071 - 5.0], 1)
    assert plain.item() == pytest.approx((row0_plain + row1_plain) / 2, rel=1e-4)
    assert corrected.item() == pytest.approx((row0_corr + row1_corr) / 2, rel=1e-4)


def test_accidental_hits_are_not_negatives() -> None:
    users = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    items = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    same = M.sampled_softmax_loss(
        users, items, torch.tensor([7, 7]), torch.ones(2), torch.zeros(2), 1.0
    )
    assert same.item() == pytest.approx(0.0, abs=1e-6)  # the other 7 is masked, not a competitor


def test_full_softmax_ranks_the_target_against_every_catalog_item() -> None:
    users = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # rows 0 (pad) and 1 (OOV) are never candidates: huge dots there must not count
    all_items = torch.tensor([[9.0, 9.0], [9.0, 9.0], [1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    targets, weights = torch.tensor([2, 4]), torch.tensor([1.0, 3.0])
    got = M.full_softmax_loss(users, all_items, targets, weights, 0.5)
    row0 = _softmax_ce([1.0 / 0.5, 0.0, 0.6 / 0.5], 0)
    row1 = _softmax_ce([0.0, 1.0 / 0.5, 0.8 / 0.5], 2)
    assert got.item() == pytest.approx((row0 + 3 * row1) / 4, rel=1e-6)


def test_the_softmax_setting_picks_full_for_small_catalogs() -> None:
    auto = T.TrainSettings(softmax="auto", full_softmax_max_items=1000)
    assert auto.full_softmax(1000) and not auto.full_softmax(1001)
    assert T.TrainSettings(softmax="full").full_softmax(10**7)
    assert not T.TrainSettings(softmax="sampled").full_softmax(10)
    with pytest.raises(ConfigError, match="softmax='dense'"):
        T.TrainSettings(softmax="dense")


def test_ranking_metrics_by_hand() -> None:
    scores = torch.tensor(
        [
            [0.0, 0.0, 0.9, 0.8, 0.1],  # target 2 at rank 0
            [0.0, 0.0, 0.9, 0.8, 0.1],  # target 3 at rank 1
            [0.0, 0.0, 0.9, 0.8, 0.1],  # target 4 at rank 2 (outside K=2)
            [0.0, 0.0, 0.5, 0.5, 0.1],  # target 3 tied with 2: ranked after it (rank 1)
        ]
    )
    scores = M.mask_unrecommendable(scores)
    totals = M.ranking_totals(scores, torch.tensor([2, 3, 4, 3]), k=2)
    assert totals.examples == 4 and totals.hits == 3
    assert totals.recall == pytest.approx(0.75)
    assert totals.ndcg == pytest.approx((1.0 + 1 / math.log2(3) + 0 + 1 / math.log2(3)) / 4)
    assert M.random_recall_at_k(100, 10) == 0.1


def test_rebatch_yields_every_row_once_in_full_batches() -> None:
    source = [{"x": np.arange(s, s + n)} for s, n in [(0, 7), (7, 5), (12, 11)]]
    out = list(T.rebatch(source, batch_size=4, shuffle_buffer=6, seed=1))
    assert all(len(b["x"]) == 4 for b in out) and len(out) == 5
    seen = np.concatenate([b["x"] for b in out])
    assert len(set(seen.tolist())) == 20 and set(seen.tolist()) <= set(range(23))
    kept = list(T.rebatch(source, batch_size=4, shuffle_buffer=6, seed=1, drop_last=False))
    assert sorted(np.concatenate([b["x"] for b in kept]).tolist()) == list(range(23))
    again = list(T.rebatch(source, batch_size=4, shuffle_buffer=6, seed=1))
    assert all((a["x"] == b["x"]).all() for a, b in zip(out, again, strict=True))


def test_checkpoint_round_trip_restores_the_model(tmp_path: Path) -> None:
    model = tiny_model()
    store = CheckpointStore(tmp_path / "ckpt", keep=2)
    state = T._state(model, [], 3, {"epoch": 3}, [{"epoch": 3}], {"run": "x"})
    for epoch in (1, 2, 3):
        store.save(epoch, {**state, "epoch": epoch})
    store.save_best(state)
    assert store.latest_epoch() == 3 and store.has_progress()
    assert sorted(p.name for p in (tmp_path / "ckpt").glob("epoch-*.pt")) == [
        "epoch-0002.pt",
        "epoch-0003.pt",
    ]
    restored = load_model(store.best_path())
    h = histories([2, 5])
    args = (h["hist_item_idx"], h["hist_type_idx"], h["hist_age_s"], h["hist_len"])
    assert torch.allclose(model.user_vectors(*args), restored.user_vectors(*args))
    store.mark_complete({"ok": True})
    assert store.is_complete() and not store.has_progress()


def _synthetic_split(n: int, seed: int) -> list[T.Batch]:
    """Users whose history is items of one parity and whose target shares it: learnable."""
    rng = np.random.default_rng(seed)
    parity = rng.integers(0, 2, n)
    items = 2 + 2 * rng.integers(0, 9, (n, L)) + parity[:, None]
    target = 2 + 2 * rng.integers(0, 9, n) + parity
    return [{
        "hist_item_idx": items, "hist_type_idx": np.ones((n, L), dtype=np.int64),
        "hist_age_s": np.full((n, L), 60), "hist_len": np.full(n, L), "target_item_idx": target,
        "label_weight": np.ones(n, dtype=np.float32),
    }]  # fmt: skip


def test_single_process_loop_learns_checkpoints_and_resumes(tmp_path: Path) -> None:
    cfg = config(encoder="mean")
    data = {"train": _synthetic_split(2048, 1), "val": _synthetic_split(256, 2)}
    settings = T.TrainSettings(
        epochs=3,
        batch_size=64,
        patience=5,
        k=5,
        shuffle_buffer=512,
        learning_rate=0.01,
        sparse_learning_rate=0.05,
    )
    store = CheckpointStore(tmp_path / "ckpt")
    category = torch.arange(20) % 5
    log_q = M.log_q_from_counts(torch.ones(20))
    first = T.train_loop(
        comm=T.SingleProcess(), model_config=cfg, item_category=category, item_log_q=log_q,
        settings=T.TrainSettings(**{**settings.__dict__, "epochs": 2}), open_split=lambda s, e: data[s],
        checkpoints=store, device=CPU,
    )  # fmt: skip
    assert first.epochs_run == [1, 2] and store.latest_epoch() == 2
    assert first.history[-1]["train_loss"] < first.history[0]["train_loss"]
    assert first.best_val_recall > M.random_recall_at_k(18, 5) * 1.5  # learned the parity structure
    resumed = T.train_loop(
        comm=T.SingleProcess(), model_config=cfg, item_category=category, item_log_q=log_q, settings=settings,
        open_split=lambda s, e: data[s], checkpoints=store, resume=True, device=CPU,
    )  # fmt: skip
    assert resumed.start_epoch == 3 and resumed.epochs_run == [3]
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]


def test_the_full_softmax_loop_learns_too(tmp_path: Path) -> None:
    data = {"train": _synthetic_split(2048, 1), "val": _synthetic_split(256, 2)}
    settings = T.TrainSettings(
        epochs=2, batch_size=64, patience=5, k=5, shuffle_buffer=512, learning_rate=0.01,
        sparse_learning_rate=0.05, softmax="full",
    )  # fmt: skip
    result = T.train_loop(
        comm=T.SingleProcess(), model_config=config(encoder="mean"),
        item_category=torch.arange(20) % 5, item_log_q=M.log_q_from_counts(torch.ones(20)),
        settings=settings, open_split=lambda s, e: data[s],
        checkpoints=CheckpointStore(tmp_path / "ckpt"), device=CPU,
    )  # fmt: skip
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.best_val_recall > M.random_recall_at_k(18, 5) * 1.5


def test_non_finite_loss_stops_training_with_its_location() -> None:
    data = _synthetic_split(256, 3)
    data[0]["label_weight"] = np.full(256, np.nan, dtype=np.float32)
    with pytest.raises(T.TrainingError, match=r"loss is nan at epoch 1 step 1 on worker 0"):
        T.train_loop(
            comm=T.SingleProcess(), model_config=config(), item_category=torch.arange(20) % 5,
            item_log_q=torch.zeros(20), settings=T.TrainSettings(epochs=1, batch_size=64),
            open_split=lambda s, e: data, checkpoints=None, device=CPU,
        )  # fmt: skip


def test_mixed_precision_is_off_on_cpu_unless_asked() -> None:
    _, dtype = T.autocast_for(torch.device("cpu"), "auto")
    assert dtype is None
    _, bf16 = T.autocast_for(torch.device("cpu"), "bf16")
    assert bf16 == torch.bfloat16


def test_prefetch_keeps_order_and_raises_reader_errors() -> None:
    assert list(T.prefetch(iter(range(50)), depth=3)) == list(range(50))

    def broken() -> object:
        yield 1
        raise OSError("shard vanished")

    got = []
    with pytest.raises(OSError, match="shard vanished"):
        for item in T.prefetch(broken()):
            got.append(item)
    assert got == [1]


def test_index_map_finds_each_id_in_the_old_vocabulary_and_marks_new_ones() -> None:
    old = ["", "", "a", "b", "c"]
    new = ["", "", "c", "x", "a", "y"]
    assert M.index_map(new, old).tolist() == [0, 1, 4, -1, 2, -1]


def test_carried_weights_keep_shared_items_rows_and_start_new_items_fresh() -> None:
    old = tiny_model()  # 20 item indices, 5 categories
    torch.manual_seed(7)
    new_cfg = config(num_items=23, num_categories=6)
    new = M.TwoTower(new_cfg, torch.arange(23) % 6)
    fresh = new.item_embedding.weight.detach().clone()
    items = torch.full((23,), -1, dtype=torch.long)
    items[:2] = torch.tensor([0, 1])
    items[2:20] = torch.arange(19, 1, -1)  # the 18 old items, in reverse order
    categories = torch.tensor([0, 1, 4, 3, 2, -1])
    carried = M.carry_weights(old, new, items, categories)
    assert carried == M.WarmStart(
        items_carried=18, items_new=3, categories_carried=3, categories_new=1,
        layers_carried=len(list(new.parameters())) - 2,
    )  # fmt: skip
    assert torch.equal(new.item_embedding.weight[2], old.item_embedding.weight[19])
    assert torch.equal(new.item_embedding.weight[19], old.item_embedding.weight[2])
    assert torch.equal(new.item_embedding.weight[1], old.item_embedding.weight[1])  # OOV
    assert torch.equal(new.item_embedding.weight[20:], fresh[20:])  # new items untouched
    assert torch.equal(new.category_embedding.weight[2], old.category_embedding.weight[4])
    assert not torch.equal(new.category_embedding.weight[5], old.category_embedding.weight[4])
    for name, p in old.named_parameters():
        if "embedding.weight" not in name or name.startswith(("type", "age", "position")):
            assert torch.equal(p, dict(new.named_parameters())[name]), name


def test_carrying_into_another_shape_names_the_parameter() -> None:
    old = tiny_model()
    new = M.TwoTower(config(dim=16), torch.arange(20) % 5)
    with pytest.raises(ValueError, match=r"item_projection.weight has shape \(8, 12\)"):
        M.carry_weights(old, new, torch.arange(20), torch.arange(5))


def test_a_warm_started_loop_begins_from_the_given_weights() -> None:
    torch.manual_seed(5)  # not the loop's own initialisation (seed 0)
    source = M.TwoTower(config(encoder="mean"), torch.arange(20) % 5).eval()
    weights = {k: v.detach().clone() for k, v in source.named_parameters()}
    data = {"train": _synthetic_split(256, 1), "val": _synthetic_split(128, 2)}
    outcomes = [
        T.train_loop(
            comm=T.SingleProcess(),
            model_config=config(encoder="mean"),
            item_category=torch.arange(20) % 5,
            item_log_q=M.log_q_from_counts(torch.ones(20)),
            settings=T.TrainSettings(
                epochs=1,
                batch_size=64,
                k=5,
                learning_rate=1e-9,
                sparse_learning_rate=1e-9,
                shuffle_buffer=64,
            ),
            open_split=lambda s, e: data[s],
            checkpoints=None,
            device=CPU,
            initial_weights=w,
        )
        for w in (weights, None)
    ]
    # with a vanishing learning rate the val metrics are those of the starting weights
    h = _synthetic_split(128, 2)[0]
    with torch.no_grad():
        users = source.user_vectors(
            *(
                torch.as_tensor(h[c])
                for c in ("hist_item_idx", "hist_type_idx", "hist_age_s", "hist_len")
            )
        )
        scores = M.mask_unrecommendable(users @ source.all_item_vectors().T)
        expected = M.ranking_totals(scores, torch.as_tensor(h["target_item_idx"]), 5).recall
    assert outcomes[0].best_val_recall == pytest.approx(expected, abs=1e-6)
    assert outcomes[1].best_val_recall != pytest.approx(expected, abs=1e-6)
    with pytest.raises(ValueError, match=r"parameter item_embedding\.weight is missing"):
        T.load_parameters(source, {})


def test_a_warm_start_trains_on_recent_targets_and_a_replay_share_of_older_ones() -> None:
    times = np.array(["2026-11-18T23:59:59", "2026-11-19T00:00:00", "2026-11-19T12:00:00"] * 400,
                     dtype="datetime64[us]")  # fmt: skip
    batches = [{"target_item_idx": np.arange(1200), "target_time": times}]
    since = np.datetime64("2026-11-19", "us")
    (only_recent,) = T.recent_and_replay(batches, since, replay=0.0, seed=1)
    assert set(only_recent) == {"target_item_idx"}
    assert only_recent["target_item_idx"].tolist() == [i for i in range(1200) if i % 3]
    (every,) = T.recent_and_replay(batches, since, replay=1.0, seed=1)
    assert every["target_item_idx"].tolist() == list(range(1200))
    (some,) = T.recent_and_replay(batches, since, replay=0.25, seed=1)
    older = [i for i in some["target_item_idx"].tolist() if i % 3 == 0]
    assert set(only_recent["target_item_idx"].tolist()) <= set(some["target_item_idx"].tolist())
    assert 60 < len(older) < 140  # about a quarter of the 400 older rows
    (other,) = T.recent_and_replay(batches, since, replay=0.25, seed=2)
    assert other["target_item_idx"].tolist() != some["target_item_idx"].tolist()
