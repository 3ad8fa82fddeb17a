"""What a publish would change, worked out without a server: the checks, the digest, the plan and the prefix rule."""

from __future__ import annotations

from typing import Any

import jwt
import pytest

from dlt_stac.publish.checks import item_problem, publish_digest, published_content
from dlt_stac.publish.plan import PublishCounts, deletion_row, item_changes
from dlt_stac.publish.prefixes import prefixes_of, token_claims
from dlt_stac.publish.transactions import Rejection


def item(item_id: str, **properties: Any) -> dict[str, Any]:
    return {
        "type": "Feature", "stac_version": "1.0.0", "id": item_id, "geometry": {"type": "Point", "coordinates": [1, 2]},
        "bbox": [1, 2, 1, 2], "properties": {"datetime": "2024-01-01T00:00:00Z", **properties}, "assets": {},
        "links": [{"rel": "self", "href": "http://elsewhere/items/x"}, {"rel": "license", "href": "http://l"}],
    }  # fmt: skip


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        (item("a"), None),
        (item("a", datetime=None, start_datetime="2024-01-01T00:00:00Z", end_datetime="2024-01-02T00:00:00Z"), None),
        ({**item("a"), "geometry": None}, None),
        ([1, 2], "not a JSON object but list"),
        ({**item("a"), "type": "Collection"}, "not a GeoJSON Feature (type is 'Collection')"),
        ({**item("a"), "id": ""}, "the item has no id"),
        ({key: value for key, value in item("a").items() if key != "geometry"},
         "the item has no geometry key (it may be null, but it must be there)"),
        ({**item("a"), "properties": None}, "the item has no properties object"),
        (item("a", datetime="2024-13-01"), "properties.datetime is not an RFC 3339 timestamp: '2024-13-01'"),
        (item("a", datetime=None, start_datetime="2024-01-01T00:00:00Z"),
         "properties.datetime is null and start_datetime and end_datetime are not both set"),
    ],
)  # fmt: skip
def test_item_problem_says_why_an_item_cannot_be_published(document: Any, problem: str | None) -> None:
    assert item_problem(document) == problem


def test_the_digest_ignores_key_order_and_links_and_sees_any_change() -> None:
    published = item("a", platform="x")
    served = {**dict(reversed(list(published.items()))), "links": [{"rel": "self", "href": "http://api/items/a"}]}
    assert publish_digest(served) == publish_digest(published)
    assert publish_digest(item("a", platform="y")) != publish_digest(published)
    assert publish_digest(item("a", platform="x", label=None)) == publish_digest(published), "a null is no change"


def test_published_content_keeps_the_items_own_links_and_sets_its_collection() -> None:
    assert published_content(item("a"), "c")["links"] == [{"rel": "license", "href": "http://l"}]
    assert published_content(item("a"), "c")["collection"] == "c"
    assert published_content({"id": "c"})["links"] == []


def test_the_plan_sends_new_and_changed_items_and_deletes_what_the_source_lacks_only_when_asked() -> None:
    held = {"same": publish_digest({**item("same"), "collection": "c"}), "old": "x", "gone": "y"}
    source = [item("same"), item("old"), item("new"), {"type": "Feature"}, item("new")]
    for delete_missing, deletions in ((False, []), (True, [deletion_row("c", "gone")])):
        counts = PublishCounts()
        rows = list(item_changes(source, "c", held, counts, delete_missing))
        assert [row["id"] for row in rows] == ["old", "new", *(row["id"] for row in deletions)]
        assert rows[len(rows) - len(deletions) :] == deletions
        assert all(row["collection"] == "c" for row in rows)
        assert (counts.created, counts.updated, counts.unchanged, counts.deleted) == (1, 1, 1, len(deletions))
        assert counts.rejections == [
            Rejection("c", None, "the item has no id"),
            Rejection("c", "new", "a second item with this id in the source"),
        ]


def test_refusals_of_the_api_move_items_from_their_counts_to_the_rejected() -> None:
    counts = PublishCounts(created=3, updated=2, deleted=1)
    counts.count_refusals(
        [Rejection("c", "new", "HTTP 400"), Rejection("c", "old", "HTTP 400"), Rejection("c", "x", "HTTP 400", True)],
        held={"old": "digest"},
    )
    assert (counts.created, counts.updated, counts.deleted, len(counts.rejections)) == (2, 1, 0, 3)
    assert counts.summary() == "created 2, updated 1, unchanged 0, deleted 0, rejected 3"


def claims_token(**claims: Any) -> str:
    return jwt.encode(claims, "not-checked-here-but-long-enough-for-hs256", algorithm="HS256")


def test_the_prefix_rule_reads_the_user_and_dss_containers_from_the_token() -> None:
    claims = token_claims(
        claims_token(preferred_username="alice", groups=["/dss/box1", "/dss/box2-ro", "/dss/box1-mgr", "/other"])
    )
    prefixes = prefixes_of(claims)
    assert prefixes is not None
    assert (prefixes.writable, prefixes.read_only) == (("alice.", "box1."), ("box2.",))
    assert prefixes.refusal("alice.s2") is None
    assert prefixes.refusal("box1.s2") is None
    assert "(its prefix is a read-only DSS container of yours)" in str(prefixes.refusal("box2.s2"))
    assert "your writable prefixes are `alice.`, `box1.`" in str(prefixes.refusal("alicex.s2"))


def test_a_token_that_names_no_user_or_groups_leaves_the_decision_to_the_api() -> None:
    assert prefixes_of(token_claims(claims_token(sub="service-account-x"))) is None
    assert token_claims("not a jwt") == {}
