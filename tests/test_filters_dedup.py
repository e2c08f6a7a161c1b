from vlforge.filters.dedup import hash_values


def test_values_hash_by_their_text_and_missing_values_have_no_hash():
    assert hash_values([7, "7", None, ""])[0] == hash_values(["7"])[0]
    assert hash_values([None, "", b""]) == [None, None, None]
    assert hash_values(["ü"]) == hash_values(["ü".encode()])  # str hashes as its UTF-8 bytes
    assert len(set(hash_values(["u1", "u2", "u3"]))) == 3
