"""The proof verification code (server self-checks and offline verifier) against every probe of the
transparency-dev/merkle test data and the RFC 6962 reference tree; the stored tree against the same tree."""

from __future__ import annotations

import lmdb
import pytest

from vaultd.journal import proofs
from vaultd.journal.tree import MerkleTree

from journal_vectors import b64, probes, reference_tree

INCLUSION = probes("inclusion")
CONSISTENCY = probes("consistency")


def _inclusion_ok(p: dict) -> bool:
    try:
        proofs.verify_inclusion(
            p["leafIdx"], p["treeSize"], b64(p["leafHash"]), [b64(x) for x in p["proof"] or []], b64(p["root"])
        )
        return True
    except proofs.ProofError:
        return False


def _consistency_ok(p: dict) -> bool:
    try:
        proofs.verify_consistency(
            p["size1"], p["size2"], [b64(x) for x in p["proof"] or []], b64(p["root1"]), b64(p["root2"])
        )
        return True
    except proofs.ProofError:
        return False


@pytest.mark.parametrize("name,probe", INCLUSION, ids=[n for n, _ in INCLUSION])
def test_inclusion_probe(name: str, probe: dict) -> None:
    assert _inclusion_ok(probe) == (not probe["wantErr"]), probe["desc"]


@pytest.mark.parametrize("name,probe", CONSISTENCY, ids=[n for n, _ in CONSISTENCY])
def test_consistency_probe(name: str, probe: dict) -> None:
    assert _consistency_ok(probe) == (not probe["wantErr"]), probe["desc"]


def test_probe_counts(capsys: pytest.CaptureFixture[str]) -> None:
    inc_ok = sum(_inclusion_ok(p) == (not p["wantErr"]) for _, p in INCLUSION)
    con_ok = sum(_consistency_ok(p) == (not p["wantErr"]) for _, p in CONSISTENCY)
    valid = (sum(not p["wantErr"] for _, p in INCLUSION), sum(not p["wantErr"] for _, p in CONSISTENCY))
    with capsys.disabled():
        print(
            f"\nmerkle vectors: inclusion {inc_ok}/{len(INCLUSION)}, consistency {con_ok}/{len(CONSISTENCY)}"
            f" (must verify: {valid[0]} + {valid[1]})"
        )
    assert len(INCLUSION) >= 98 and len(CONSISTENCY) >= 98
    assert inc_ok == len(INCLUSION) and con_ok == len(CONSISTENCY)


def test_hasher_vectors() -> None:
    ref = reference_tree()
    for v in ref["hasher_vectors"]:
        if v["kind"] == "empty_root":
            got = proofs.EMPTY_ROOT
        elif v["kind"] == "leaf":
            got = proofs.leaf_hash(bytes.fromhex(v["leaf_input"]))
        else:
            got = proofs.node_hash(bytes.fromhex(v["left"]), bytes.fromhex(v["right"]))
        assert got.hex() == v["want"], v["desc"]


def test_stored_tree_matches_reference(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ref = reference_tree()
    leaves = [bytes.fromhex(x) for x in ref["tree"]["leaf_inputs"]]
    env = lmdb.open(str(tmp_path), max_dbs=8, map_size=1 << 24)
    tree = MerkleTree(env)
    with env.begin(write=True) as txn:
        tree.append_many(txn, leaves)
    roots = ref["tree"]["root_by_size"]
    checks = 0
    for n, want in enumerate(roots):
        assert tree.root(n).hex() == want
        checks += 1
    for level, hashes in enumerate(ref["tree"]["node_hashes_by_level"]):
        for i, want in enumerate(hashes):
            with env.begin() as txn:
                assert tree._node(txn, level, i).hex() == want
            checks += 1
    for p in ref["inclusion_proofs"]:
        got = tree.inclusion_proof(p["leaf_index"], p["tree_size"])
        assert [h.hex() for h in got] == p["proof"]
        proofs.verify_inclusion(p["leaf_index"], p["tree_size"], proofs.leaf_hash(leaves[p["leaf_index"]]),
                                got, tree.root(p["tree_size"]))
        checks += 1
    for p in ref["consistency_proofs"]:
        got = tree.consistency_proof(p["size1"], p["size2"])
        assert [h.hex() for h in got] == p["proof"]
        proofs.verify_consistency(p["size1"], p["size2"], got, tree.root(p["size1"]), tree.root(p["size2"]))
        checks += 1
    assert checks >= 30
    env.close()
