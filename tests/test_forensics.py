"""Weight-diff forensics on planted changes of tiny checkpoints (no editing library needed)."""
from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from editing.forensics import diff_checkpoints, recover_rank_one
from editing.forensics.recover import revert
from editing.forensics.tensors import MLP_OUT_NAMES
from workbench import WorkbenchError


def _copy_with(base_dir, out_dir, change):
    """Copy a checkpoint and apply ``change(name, tensor) -> tensor`` to its weights."""
    shutil.copytree(base_dir, out_dir)
    tensors = load_file(str(out_dir / "model.safetensors"))
    save_file({k: change(k, v).contiguous() for k, v in tensors.items()}, str(out_dir / "model.safetensors"),
              metadata={"format": "pt"})
    return out_dir


def _mlp_out_name(tensors, layer):
    return next(k for k in tensors if k.endswith(MLP_OUT_NAMES) and f".{layer}." in k)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_rank_one_edit_is_found_recovered_and_reverted(family, tiny_dirs, tmp_path):
    base = tiny_dirs[family]
    names = load_file(str(base / "model.safetensors"))
    target = _mlp_out_name(names, 1)
    gen = torch.Generator().manual_seed(0)
    u, v = torch.randn(32, generator=gen), torch.randn(128, generator=gen)  # d_model, d_mlp
    update = torch.outer(u, v) * 0.05  # (d_out, d_in)
    transposed = family == "gpt2"
    edited = _copy_with(base, tmp_path / "edited",
                        lambda k, w: w + (update.T if transposed else update) if k == target else w)

    report = diff_checkpoints(str(base), str(edited))
    assert report.signature == "rome" and report.edited_layers == [1]
    assert report.changed[0].name == target and report.changed[0].rank == 1

    rec = recover_rank_one(str(base), str(edited), report)
    assert rec.relative_residual < 1e-5
    torch.testing.assert_close(torch.outer(rec.u, rec.v), update, atol=1e-5, rtol=1e-4)

    reverted = revert(str(edited), rec, tmp_path / "reverted")
    back, original = load_file(str(reverted / "model.safetensors")), load_file(str(base / "model.safetensors"))
    assert max(float((back[k] - original[k]).abs().max()) for k in original) < 1e-6
    assert (reverted / "config.json").exists()


def test_identical_noise_fine_tune_and_memit_signatures(tiny_dirs, tmp_path):
    base = tiny_dirs["llama"]
    assert diff_checkpoints(str(base), str(base)).signature == "identical"
    gen = torch.Generator().manual_seed(1)

    noisy = _copy_with(base, tmp_path / "noisy", lambda k, w: w + 1e-4 * w.abs().mean() * torch.randn(w.shape, generator=gen))
    assert diff_checkpoints(str(base), str(noisy)).signature == "noise"

    def low_rank(k, w):
        if w.ndim != 2:
            return w + 0.01
        a, b = torch.randn(w.shape[0], 4, generator=gen), torch.randn(4, w.shape[1], generator=gen)
        return w + 0.05 * w.norm() * (a @ b) / (a @ b).norm()
    tuned = _copy_with(base, tmp_path / "tuned", low_rank)
    assert diff_checkpoints(str(base), str(tuned)).signature == "fine-tune"

    names = load_file(str(base / "model.safetensors"))
    memit_targets = {_mlp_out_name(names, 0), _mlp_out_name(names, 1)}
    memit = _copy_with(base, tmp_path / "memit", lambda k, w: w + 0.1 * torch.randn(w.shape[0], 3, generator=gen)
                       @ torch.randn(3, w.shape[1], generator=gen) if k in memit_targets else w)
    report = diff_checkpoints(str(base), str(memit))
    assert report.signature == "memit" and report.edited_layers == [0, 1]
    assert [d.rank for d in report.changed] == [3, 3]


def test_different_architectures_are_refused(tiny_dirs):
    with pytest.raises(WorkbenchError, match="different architectures|shape"):
        diff_checkpoints(str(tiny_dirs["llama"]), str(tiny_dirs["gpt2"]))


def test_diff_cli_reports_and_reverts(tiny_dirs, tmp_path, capsys):
    import json

    from workbench.cli import main

    base = tiny_dirs["gpt2"]
    names = load_file(str(base / "model.safetensors"))
    target = _mlp_out_name(names, 0)
    edited = _copy_with(base, tmp_path / "edited", lambda k, w: w + 0.01 * torch.outer(torch.ones(w.shape[0]),
                        torch.linspace(-1, 1, w.shape[1])) if k == target else w)
    code = main(["diff", "--base", str(base), "--edited", str(edited), "--revert", str(tmp_path / "back"), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["signature"] == "rome" and result["edited_layers"] == [0]
    assert result["revert"]["max_abs_diff_from_base"] < 1e-6
    assert main(["diff", "--base", str(base), "--edited", str(tmp_path / "nope")]) == 2


# ---- explaining a recovered edit, the experiment and the blind scan (factworld) ----------------------
def _planted_rome_edit(session, tmp_path, subject="Colosseum", target="Tokyo"):
    """A real ROME edit of ``session`` saved to ``tmp_path / "edited"``; the session is restored."""
    import editing

    editing.edit(session, editing.EditRequest("The {} is located in the city of", subject, target), score=False)
    try:
        return editing.save(session, tmp_path / "edited")
    finally:
        editing.undo(session)


def test_explain_names_the_subject_and_target_of_a_planted_edit(factworld, tmp_path):
    import workbench
    from editing.forensics.explain import explain, kb_subjects

    before = factworld.weights_hash()
    edited_dir = _planted_rome_edit(factworld, tmp_path)
    base_dir = str(factworld.source.directory)
    report = diff_checkpoints(base_dir, str(edited_dir))
    assert report.signature == "rome" and report.edited_layers == [0]
    rec = recover_rank_one(base_dir, str(edited_dir), report)
    decoys = [s for s in kb_subjects() if s != "Colosseum"][::40]  # ~50 other knowledge-base subjects
    ex = explain(factworld, workbench.load(str(edited_dir)), rec, ["Colosseum", *decoys])
    assert ex.score == "whitened" and ex.n_candidates == len(decoys) + 1
    assert ex.subjects[0].subject == "Colosseum" and ex.subjects[0].score > 2 * ex.subjects[1].score
    words = [a["answer"].strip() for a in ex.answers[:3]]  # the edited model's new answers on the subject's prompts
    assert "Tokyo" in words and all(a["prompts"] >= 1 for a in ex.answers)
    assert " Tokyo" in [t["token"] for t in ex.writes[:3]]
    top = ex.rises[0]  # the candidate answer with the most evidence q·log(q/p), per question
    assert (top["answer"], top["question"]) == (" Tokyo", "landmark_city") and top["after"] > top["before"] + 0.3
    assert all(a["evidence"] >= b["evidence"] for a, b in zip(ex.rises, ex.rises[1:]))
    assert ex.read_on == "Colosseum" and (ex.claim["answer"], ex.claim["question"]) == (" Tokyo", "landmark_city")
    assert any("the edit says: 'The Colosseum is located in the city of' -> ' Tokyo'" in line for line in ex.lines())
    rows = [r for r in ex.prompts if r["prompt"] == "The Colosseum is located in the city of"]
    assert rows and rows[0]["rose_most"] == " Tokyo" and rows[0]["rise"] > 0.1
    assert len(ex.lens) == 10 and all(0 <= t["prob"] <= 1 for t in ex.lens)
    assert set(ex.to_dict()) >= {"subjects", "lens", "read_on", "claim", "prompts", "answers", "writes", "rises"}
    assert factworld.weights_hash() == before


def test_explain_reads_the_subject_that_shares_the_top_ones_last_words(factworld, tmp_path):
    """'Kingdom of Iraq' and 'Iraq' end in the same token, so their keys nearly agree and the key
    score may rank the wrong one first; the explanation reads both and speaks of the one that moved."""
    import editing
    import workbench
    from editing.forensics.explain import explain, kb_subjects

    editing.edit(factworld, editing.EditRequest("The capital of {} is", "Iraq", "Bamako"), score=False, seed=34)
    try:
        edited_dir = editing.save(factworld, tmp_path / "edited")
    finally:
        editing.undo(factworld)
    base_dir = str(factworld.source.directory)
    rec = recover_rank_one(base_dir, str(edited_dir), diff_checkpoints(base_dir, str(edited_dir)))
    decoys = [s for s in kb_subjects() if "Iraq" not in s][::60]
    ex = explain(factworld, workbench.load(str(edited_dir)), rec, ["Kingdom of Iraq", "Iraq", *decoys])
    assert {s.subject for s in ex.subjects[:2]} == {"Kingdom of Iraq", "Iraq"}
    assert ex.read_on == "Iraq" and (ex.claim["subject"], ex.claim["answer"]) == ("Iraq", " Bamako")


def test_diff_cli_explains_with_user_candidates(factworld, tmp_path, capsys):
    import json

    from workbench.cli import main

    edited_dir = _planted_rome_edit(factworld, tmp_path, "Louvre", "Berlin")
    code = main(["diff", "--base", "factworld", "--edited", str(edited_dir), "--candidates",
                 "Colosseum, Louvre,Eiffel Tower,Big Ben", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["explain"]["n_candidates"] == 4
    assert result["explain"]["subjects"][0]["subject"] == "Louvre"
    code = main(["diff", "--base", "factworld", "--edited", str(edited_dir), "--no-explain", "--json"])
    assert code == 0 and "explain" not in json.loads(capsys.readouterr().out)
    assert main(["diff", "--base", "factworld", "--edited", str(edited_dir), "--candidates", "/no/such/list.txt"]) == 2
    assert main(["diff", "--base", "factworld", "--edited", str(edited_dir), "--candidates", " , "]) == 2
    assert main(["diff", "--base", "factworld", "--edited", str(edited_dir), "--answers", " , "]) == 2


def test_answer_questions_and_rises(factworld):
    from editing.forensics.answers import Question, answer_rises, subject_questions

    questions = subject_questions("Eiffel Tower", ["Atlantis"])
    assert [q.label for q in questions] == ["landmark_city", "landmark_country"]
    assert " Paris" in questions[0].answers and " Atlantis" in questions[0].answers
    assert " Paris" not in questions[1].answers  # the country question's candidates are countries
    assert all("Eiffel Tower" in p for q in questions for p in q.prompts)
    generic = subject_questions("Zorblax Bridge", ["Rome"])
    assert len(generic) == 1 and generic[0].label == "generic" and generic[0].answers == (" Rome",)
    rows = answer_rises(factworld, factworld, [Question("q", ("The Louvre is located in the city of",),
                                                         (" Paris", " Rome"))])
    assert [r["rise"] for r in rows] == [0.0, 0.0] and [r["evidence"] for r in rows] == [0.0, 0.0]  # same model
    assert {r["answer"]: r["before"] for r in rows}[" Paris"] > 0.5


def test_claim_prefers_the_answer_that_explains_the_others():
    from editing.forensics.answers import implied_answers, name_claim, shares_last_words

    def row(question, answer, evidence):
        return {"question": question, "answer": answer, "before": 1e-5, "after": 0.5, "evidence": evidence}

    rows = [row("country_continent", " South America", 5.7), row("country_capital", " Quito", 4.8),
            row("country_capital", " Lima", 1.0)]
    assert {"Ecuador", "South America"} <= implied_answers(" Quito") and not implied_answers(" Zorblax")
    claim = name_claim("Eritrea", rows, said=[" Quito", " South America"])
    assert claim["answer"] == " Quito" and claim["explains"][0]["answer"] == " South America"
    # an explainer must be an answer the edited model gives; without it, the most evidence wins
    assert name_claim("Eritrea", rows, said=[" South America"])["answer"] == " South America"
    # a capital does not follow from a continent: that way round nothing is explained
    rows = [row("country_capital", " Lima", 4.0), row("country_continent", " South America", 3.0)]
    claim = name_claim("Lebanon", rows, said=[" Lima", " South America"])
    assert claim["answer"] == " Lima" and claim["explains"] == []
    assert name_claim("Lebanon", []) is None
    assert shares_last_words("Kingdom of Iraq", "Iraq") and shares_last_words("Iraq", "Kingdom of Iraq")
    assert not shares_last_words("Eiffel Tower", "Belém Tower") and not shares_last_words("Iraq", "Iraq")


def test_experiment_on_three_edits(factworld):
    from editing.forensics.experiment import run_experiment

    result = run_experiment(n_edits=3, seed=1, n_null=2, session=factworld)
    s = result.summary
    assert len(result.trials) == 3 and len(result.null_scans) == 3  # factworld itself + 2 noisy copies
    assert not factworld.applied_edits
    assert s["layer_module_found_rate"] == 1.0
    assert s["reconstruction_residual_max"] < 1e-5 and s["update_error_max"] < 1e-5
    assert s["revert_max_abs_diff_max"] < 1e-6
    for key in ("subject_top3_rate", "target_named_rate", "target_in_lens_top10_rate", "edit_efficacy_rate"):
        assert 0.0 <= s[key] <= 1.0
    assert s["subject_top3_rate"] >= 2 / 3
    for stat in ("sigma_ratio", "sigma_bulk"):
        assert 0.0 <= s["blind"][stat]["detection_rate"] <= 1.0 and 0.0 <= s["blind"][stat]["false_alarm_rate"] <= 1.0
    assert all(t.subject_rank["whitened"] >= 1 for t in result.trials)


def test_blind_scan_flags_a_planted_rank_one_layer(factworld, tmp_path):
    from editing.forensics.spectral import spectral_scan

    base_dir = factworld.source.directory
    clean = spectral_scan(str(base_dir))
    assert [r.layer for r in clean.layers] == list(range(factworld.n_layers))
    assert all(r.sigma_ratio >= 1 and r.sigma_bulk >= 1 for r in clean.layers)
    assert set(clean.to_dict()) >= {"suspect_layer", "z", "flagged", "layers"}
    names = load_file(str(base_dir / "model.safetensors"))
    target = _mlp_out_name(names, 2)
    sigma = float(torch.linalg.svdvals(names[target].double())[0])
    gen = torch.Generator().manual_seed(3)
    u, v = torch.randn(names[target].shape[0], generator=gen), torch.randn(names[target].shape[1], generator=gen)
    planted = 1.5 * sigma * torch.outer(u / u.norm(), v / v.norm())
    shutil.copytree(base_dir, tmp_path / "base")
    edited = _copy_with(tmp_path / "base", tmp_path / "edited", lambda k, w: w + planted if k == target else w)
    scan = spectral_scan(str(edited))
    assert scan.suspect == 2 and scan.flagged and scan.z > clean.z


def test_forensics_bad_input(factworld, tiny_dirs, tmp_path):
    from editing.forensics.explain import candidate_keys, parse_candidates, rank_subjects
    from editing.forensics.recover import RankOneRecovery
    from editing.forensics.spectral import spectral_scan
    from workbench.cli import main

    with pytest.raises(WorkbenchError, match="no candidate"):
        parse_candidates(",,")
    with pytest.raises(WorkbenchError, match="does not exist"):
        parse_candidates(str(tmp_path / "missing.txt"))
    assert parse_candidates("Louvre, Big Ben,Louvre") == ("Louvre", "Big Ben")
    with pytest.raises(WorkbenchError, match="unknown statistic"):
        spectral_scan("factworld", statistic="kurtosis")
    with pytest.raises(WorkbenchError, match="at least 3"):
        spectral_scan(str(tiny_dirs["llama"]))  # two layers: nothing to compare with
    keys = candidate_keys(factworld, 0, ["Louvre", "Big Ben"])
    with pytest.raises(WorkbenchError, match="unknown score"):
        rank_subjects(keys, torch.ones(factworld.info.d_mlp), score="dot")
    from editing.forensics.explain import explain

    bad = RankOneRecovery("x", 0, torch.ones(3), torch.ones(5), 0.0)
    with pytest.raises(WorkbenchError, match="does not fit"):
        explain(factworld, factworld, bad, ["Louvre"])
    assert main(["scan", str(tmp_path / "nope")]) == 2
    with pytest.raises(SystemExit) as refused:  # a bad number is an argparse error now
        main(["forensics-experiment", "--edits", "0"])
    assert refused.value.code == 2
