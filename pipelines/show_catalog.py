"""Shows what a STAC API holds: its collections and how many items each has.

    python pipelines/show_catalog.py --url http://127.0.0.1:8081
"""

from __future__ import annotations

import argparse

from pystac_client import Client


def item_count(client: Client, collection_id: str) -> int:
    """Counts by paging, since not every server reports numberMatched."""
    search = client.search(collections=[collection_id], limit=500, method="POST")
    return sum(1 for _ in search.items_as_dicts())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the STAC API's landing page")
    url = parser.parse_args().url
    client = Client.open(url)
    print(f"{client.title or client.id} at {url}")
    for collection in client.get_collections():
        print(f"  {collection.id:<24} {item_count(client, collection.id):>6} items")


if __name__ == "__main__":
    main()
