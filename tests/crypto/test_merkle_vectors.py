"""RFC 6962 Merkle trees against the transparency-dev probes and reference tree (merkle/README.md)."""

from __future__ import annotations

from vaultd import crypto

from .vectors import b64, h, json_files, load_json, report


def test_inclusion_probes() -> None:
    ok = refused = 0
    for name, p in json_files("merkle/inclusion"):
        proof = [b64(x) for x in (p["proof"] or [])]
        got = crypto.merkle_verify_inclusion(b64(p["leafHash"]), p["leafIdx"], p["treeSize"], proof, b64(p["root"]))
        assert got == (not p["wantErr"]), (name, p["desc"])
        ok += got
        refused += not got
    report("RFC 6962 inclusion probes", verified=ok, refused=refused)
    assert ok + refused == 98


def test_consistency_probes() -> None:
    ok = refused = 0
    for name, p in json_files("merkle/consistency"):
        proof = [b64(x) for x in (p["proof"] or [])]
        got = crypto.merkle_verify_consistency(p["size1"], p["size2"], b64(p["root1"]), b64(p["root2"]), proof)
        assert got == (not p["wantErr"]), (name, p["desc"])
        ok += got
        refused += not got
    report("RFC 6962 consistency probes", verified=ok, refused=refused)
    assert ok + refused == 98


def test_reference_tree() -> None:
    doc = load_json("merkle/rfc6962_reference_tree.json")
    checks = 0
    for v in doc["hasher_vectors"]:
        if v["kind"] == "empty_root":
            got = crypto.merkle_root([])
        elif v["kind"] == "leaf":
            got = crypto.merkle_leaf_hash(h(v["leaf_input"]))
        else:
            got = crypto.merkle_node_hash(h(v["left"]), h(v["right"]))
        assert got.hex() == v["want"], v["desc"]
        checks += 1
    tree = doc["tree"]
    leaves = [crypto.merkle_leaf_hash(h(x)) for x in tree["leaf_inputs"]]
    t = crypto.MerkleTree()
    for leaf in leaves:
        t.append(leaf)
    for level, hashes in enumerate(tree["node_hashes_by_level"]):
        for i, want in enumerate(hashes):
            span = 1 << level
            assert crypto.merkle_root(leaves[i * span : (i + 1) * span]).hex() == want, (level, i)
            checks += 1
    for n, want in enumerate(tree["root_by_size"]):
        assert crypto.merkle_root(leaves[:n]).hex() == want
        assert t.root(n).hex() == want
        checks += 1
    for p in doc["inclusion_proofs"]:
        want = [h(x) for x in p["proof"]]
        i, n = p["leaf_index"], p["tree_size"]
        assert crypto.merkle_inclusion_proof(leaves[:n], i) == want
        assert t.inclusion_proof(i, n) == want
        assert crypto.merkle_verify_inclusion(leaves[i], i, n, want, h(tree["root_by_size"][n]))
        checks += 1
    for p in doc["consistency_proofs"]:
        want = [h(x) for x in p["proof"]]
        m, n = p["size1"], p["size2"]
        assert crypto.merkle_consistency_proof(leaves[:n], m) == want
        assert t.consistency_proof(m, n) == want
        assert crypto.merkle_verify_consistency(m, n, h(tree["root_by_size"][m]), h(tree["root_by_size"][n]), want)
        checks += 1
    report("RFC 6962 reference tree", checks=checks)
    assert checks == 4 + 15 + 9 + len(doc["inclusion_proofs"]) + len(doc["consistency_proofs"])
