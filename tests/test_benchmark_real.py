"""The real-data loaders (POPE parquet, COCO instances) against tiny offline fixtures; no network."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
import socket
import urllib.error
import zipfile
from fnmatch import fnmatch
from pathlib import Path

import huggingface_hub
import pandas as pd
import pytest
from huggingface_hub import errors as hub_errors

from fixtures_real import (
    COCO_EXPECTED,
    POPE_CARD,
    POPE_IMAGES,
    coco_instances,
    encode_image,
    pope_rows,
    write_coco_fixture,
    write_pope_parquet,
    write_pope_repo,
)
from vrp.benchmark import coco, pope
from vrp.benchmark.schema import COLUMNS, validate_questions


@pytest.fixture
def pope_repo(tmp_path: Path) -> Path:
    return write_pope_repo(tmp_path / "pope_repo")


@pytest.fixture
def coco_paths(tmp_path: Path) -> dict[str, Path]:
    return write_coco_fixture(tmp_path / "coco")


@pytest.fixture
def no_network(monkeypatch):
    """Make any socket connection fail the test loudly (AssertionError is not caught as a network error)."""

    def refuse(*args, **kwargs):
        raise AssertionError("the test tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


# --------------------------------------------------------------------------------------------
# POPE: loading


def test_load_pope_rows_order_and_schema(pope_repo):
    table = pope.load_pope([pope_repo / "data" / "test-00000-of-00001.parquet"])
    assert list(table.columns) == list(COLUMNS)
    validate_questions(table)
    # settings in schema order, question ids numerically (10 after 3), whatever the file order
    assert table["question_id"].tolist() == [
        f"pope-{s}-{q}" for s in ("random", "popular", "adversarial") for q in ("1", "2", "3", "10")
    ]
    first = table.iloc[0]
    assert first["image_id"] == "coco-42"
    assert first["question"] == "Is there a dining table in the image?"
    assert first["answer"] == "yes"  # "Yes" in the file
    assert first["object"] == "dining table"
    assert first["task"] == "presence" and first["pope_setting"] == "random"
    assert table.loc[table["question_id"] == "pope-adversarial-2", "object"].item() == "fork"
    assert (
        table.loc[table["question_id"] == "pope-popular-2", "question"].item()
        == "Is there an chair in the image?"
    )
    # "a  dog" (double space) parses and is normalised
    assert (
        table.loc[table["question_id"] == "pope-random-3", "question"].item()
        == "Is there a dog in the image?"
    )
    assert table["answer"].value_counts().to_dict() == {"yes": 6, "no": 6}
    # embedded bytes come through unchanged: a JPEG for image 42, a PNG for 73
    assert first["image"] == pope_rows("random")[1]["image"]["bytes"]
    assert table.loc[table["image_id"] == "coco-73", "image"].iloc[0][:8] == b"\x89PNG\r\n\x1a\n"
    assert set(table["image_id"]) == {f"coco-{source}" for source in POPE_IMAGES}


def test_load_pope_settings_limit_and_duplicates(pope_repo):
    every_file = pope.find_pope_parquets(pope_repo)
    assert [p.relative_to(pope_repo).as_posix() for p in every_file] == [
        "Full/adversarial-00000-of-00001.parquet",
        "Full/popular-00000-of-00001.parquet",
        "Full/random-00000-of-00001.parquet",
        "data/test-00000-of-00001.parquet",
    ]
    # both configs hold the same rows: reading all four files must not double them
    assert len(pope.load_pope(every_file)) == 12
    subset = pope.load_pope(every_file, settings=("adversarial", "random"), limit_per_setting=2)
    assert subset["question_id"].tolist() == [
        "pope-random-1",
        "pope-random-2",
        "pope-adversarial-1",
        "pope-adversarial-2",
    ]


def test_load_pope_accepts_integer_ids(tmp_path):
    rows = pope_rows("random")
    frame = pd.DataFrame(rows).astype({"question_id": int, "image_source": int})
    path = tmp_path / "int_ids.parquet"
    frame.to_parquet(path)
    table = pope.load_pope([path])
    assert table["question_id"].tolist() == [
        "pope-random-1",
        "pope-random-2",
        "pope-random-3",
        "pope-random-10",
    ]
    assert table["image_id"].tolist() == ["coco-42", "coco-42", "coco-73", "coco-73"]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (42, 42),
        ("42", 42),
        ("COCO_val2014_000000000042", 42),
        ("COCO_val2014_000000310196.jpg", 310196),
    ],
)
def test_coco_image_id_formats(source, expected):
    assert pope.coco_image_id(source) == expected


def test_parse_presence_object():
    assert pope.parse_presence_object("Is there an orange in the image?") == "orange"
    assert pope.parse_presence_object("is there a Cell Phone in the image ?") == "cell phone"
    with pytest.raises(ValueError, match="Is there a/an"):
        pope.parse_presence_object("Are there two dogs?")


def test_load_pope_missing_column(tmp_path):
    path = write_pope_parquet(
        pope_rows("random"), tmp_path / "bad.parquet", drop_columns=("category",)
    )
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['category'\]") as info:
        pope.load_pope([path])
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("question", "Are there dogs here?", "question_id='3'.*not of the form"),
        ("answer", "maybe", "question_id='3'.*not 'yes' or 'no'"),
        ("image", {"bytes": b"", "path": "x.jpg"}, "question_id='3'.*no embedded image bytes"),
        ("image_source", "not-an-id", "question_id='3'.*COCO image id"),
    ],
)
def test_load_pope_bad_rows_name_the_row(tmp_path, field, value, message):
    rows = pope_rows("popular")
    rows[2][field] = value  # question_id "3"
    path = write_pope_parquet(rows, tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match=message):
        pope.load_pope([path])


def test_pope_bad_arguments(tmp_path, pope_repo):
    shard = [pope_repo / "data" / "test-00000-of-00001.parquet"]
    with pytest.raises(ValueError, match="subset of"):
        pope.load_pope(shard, settings=("hard",))
    with pytest.raises(ValueError, match="limit_per_setting"):
        pope.load_pope(shard, limit_per_setting=0)
    with pytest.raises(ValueError, match="datasets.<name>.pope.local_dir"):
        pope.load_pope([])
    with pytest.raises(FileNotFoundError, match="datasets.<name>.pope.local_dir"):
        pope.find_pope_parquets(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        FileNotFoundError, match=r"no \*\.parquet files.*datasets.<name>.pope.local_dir"
    ):
        pope.find_pope_parquets(tmp_path / "empty")


# --------------------------------------------------------------------------------------------
# POPE: download


def test_card_patterns():
    assert pope.pope_parquet_patterns(POPE_CARD) == ["data/test-*"]
    assert pope.pope_parquet_patterns(POPE_CARD, "Full", ("random", "adversarial")) == [
        "Full/adversarial-*",
        "Full/random-*",
    ]
    assert pope.pope_parquet_patterns("# no yaml header") == ["*.parquet"]
    with pytest.raises(
        ValueError, match=r"no config 'Mini'; available configs: \['Full', 'default'\]"
    ):
        pope.pope_parquet_patterns(POPE_CARD, "Mini")


def test_download_offline_raises_helpful_error(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    with pytest.raises(pope.DataUnavailableError) as info:
        pope.download_pope(tmp_path / "download")
    message = str(info.value)
    assert isinstance(info.value, RuntimeError)
    for needle in (
        "'lmms-lab/POPE'",
        "unreachable",
        "HF_HUB_OFFLINE",
        "Hub access",
        "`datasets.<name>.pope.local_dir`",
    ):
        assert needle in message
    assert not list((tmp_path / "download").rglob("*.parquet"))


class FakeHub:
    """Stands in for hf_hub_download / snapshot_download, serving files from a local fake repo."""

    def __init__(self, repo: Path, fail_with: BaseException | None = None):
        self.repo, self.fail_with, self.calls = repo, fail_with, []

    def repo_info(self, repo_id, **kwargs):
        self.calls.append(("info", repo_id, kwargs))
        if self.fail_with is not None:
            raise self.fail_with
        return None

    def hf_hub_download(self, repo_id, filename, *, local_dir, **kwargs):
        self.calls.append(("file", repo_id, filename, kwargs))
        if self.fail_with is not None:
            raise self.fail_with
        target = Path(local_dir) / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.repo / filename, target)
        return str(target)

    def snapshot_download(self, repo_id, *, allow_patterns, local_dir, **kwargs):
        self.calls.append(("snapshot", repo_id, tuple(allow_patterns), kwargs))
        for path in self.repo.rglob("*"):
            rel = path.relative_to(self.repo).as_posix()
            if path.is_file() and any(fnmatch(rel, pattern) for pattern in allow_patterns):
                (Path(local_dir) / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, Path(local_dir) / rel)
        return str(local_dir)


def _install(monkeypatch, fake: FakeHub) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake.hf_hub_download)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake.snapshot_download)
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda: fake)


def test_download_fetches_one_config(tmp_path, monkeypatch, pope_repo, no_network):
    fake = FakeHub(pope_repo)
    _install(monkeypatch, fake)
    dest = tmp_path / "download"
    paths = pope.download_pope(dest, revision="abc123")
    assert paths == [dest / "data" / "test-00000-of-00001.parquet"]
    kind, repo_id, patterns, kwargs = fake.calls[-1]
    assert (kind, repo_id, patterns) == ("snapshot", "lmms-lab/POPE", ("data/test-*",))
    assert kwargs == {"repo_type": "dataset", "revision": "abc123", "local_files_only": False}
    assert len(pope.load_pope(paths)) == 12

    full = pope.download_pope(tmp_path / "full", config="Full", settings=("adversarial",))
    assert [p.relative_to(tmp_path / "full").as_posix() for p in full] == [
        "Full/adversarial-00000-of-00001.parquet"
    ]
    assert pope.load_pope(full, settings=("adversarial",))["pope_setting"].unique().tolist() == [
        "adversarial"
    ]


@pytest.mark.parametrize(
    "error",
    [
        ConnectionError("[Errno -2] Name or service not known"),
        hub_errors.LocalEntryNotFoundError("cannot find the requested files"),
    ],
)
def test_download_network_errors_become_data_unavailable(tmp_path, monkeypatch, pope_repo, error):
    _install(monkeypatch, FakeHub(pope_repo, fail_with=error))
    with pytest.raises(
        pope.DataUnavailableError, match="unreachable.*datasets.<name>.pope.local_dir"
    ) as info:
        pope.download_pope(tmp_path / "download")
    assert info.value.__cause__ is error
    assert type(error).__name__ in str(info.value)


def test_download_refused_repo(tmp_path, monkeypatch, pope_repo):
    import httpx2

    response = httpx2.Response(
        404, request=httpx2.Request("GET", "https://huggingface.co/datasets/nobody/POPE")
    )
    _install(
        monkeypatch,
        FakeHub(pope_repo, fail_with=hub_errors.RepositoryNotFoundError("404", response=response)),
    )
    with pytest.raises(
        pope.DataUnavailableError, match="refused.*'nobody/POPE'.*datasets.<name>.pope.repo_id"
    ):
        pope.download_pope(tmp_path / "download", repo_id="nobody/POPE")


# --------------------------------------------------------------------------------------------
# COCO tasks


def test_candidates_match_hand_worked_fixture(coco_paths):
    _, objects = coco.load_coco_instances(coco_paths["annotations"])
    counting = coco.counting_candidates(objects)
    spatial = coco.spatial_candidates(objects)
    object_id = coco.object_id_candidates(objects)
    expected = COCO_EXPECTED
    got = {("counting", r.image_id, r.k): str(r.count) for r in counting.itertuples()}
    assert got == {key: answer for key, (_, answer, _) in expected.items() if key[0] == "counting"}
    got = {("spatial", r.image_id, r.k): (r.left, r.right) for r in spatial.itertuples()}
    assert got == {
        ("spatial", 101, 0): ("cat", "dog"),
        ("spatial", 103, 0): ("umbrella", "kite"),
        ("spatial", 104, 0): ("dining table", "teddy bear"),
    }
    got = {("object_id", r.image_id, r.k): r.category for r in object_id.itertuples()}
    assert got == {key: answer for key, (_, answer, _) in expected.items() if key[0] == "object_id"}


def test_rule_thresholds_are_parameters(coco_paths):
    _, objects = coco.load_coco_instances(coco_paths["annotations"])
    # 7 cars in image 102 become countable once max_count allows 7
    counting = coco.counting_candidates(objects, coco.CocoTaskRules(max_count=7))
    assert counting.loc[counting["image_id"] == 102, ["category", "count"]].values.tolist() == [
        ["car", 7]
    ]
    # with no size threshold the mouse in 104 (area 100 < 108) counts, and the tiny bird joins the big one
    relaxed = coco.counting_candidates(objects, coco.CocoTaskRules(min_area_frac=0.0))
    assert {"mouse", "bird"} <= set(relaxed["category"])
    assert relaxed.loc[relaxed["category"] == "bird", "count"].item() == 2
    # bench/kite (10 px overlap = the kite's width) pass once any overlap is allowed
    loose = coco.spatial_candidates(objects, coco.CocoTaskRules(max_x_overlap=1.0))
    assert ["bench", "kite"] in loose.loc[
        loose["image_id"] == 103, ["left", "right"]
    ].values.tolist()
    with pytest.raises(ValueError, match="margin_frac"):
        coco.CocoTaskRules(margin_frac=1.5)


def test_plural():
    assert [
        coco.plural(n)
        for n in ("person", "bus", "hot dog", "mouse", "wine glass", "skis", "sandwich")
    ] == [
        "people",
        "buses",
        "hot dogs",
        "mice",
        "wine glasses",
        "skis",
        "sandwiches",
    ]


def _check_against_expected(table: pd.DataFrame) -> None:
    for row in table.itertuples():
        task, image_id, k = row.question_id.removeprefix("coco-").rsplit("-", 2)
        question, answer, obj = COCO_EXPECTED[(task, int(image_id), int(k))]
        if task == "spatial" and row.answer == "no":
            # the swapped order: "Is the B to the left of the A?"
            a, b = question.removeprefix("Is the ").removesuffix("?").split(" to the left of the ")
            question, obj = f"Is the {b} to the left of the {a}?", b
            answer = "no"
        assert (row.question, row.answer, row.object) == (question, answer, obj)
        assert row.image_id == f"coco-{image_id}"


@pytest.mark.filterwarnings("ignore:COCO .* only")
def test_build_coco_tasks_all_candidates(coco_paths):
    table = coco.build_coco_tasks(
        coco_paths["annotations"], coco_paths["image_dir"], 50, seed=42, max_per_image=4
    )
    validate_questions(table)
    assert sorted(table["question_id"]) == sorted(f"coco-{t}-{i}-{k}" for t, i, k in COCO_EXPECTED)
    _check_against_expected(table)
    assert table["task"].tolist()[:8] == ["counting"] * 8
    assert (table["pope_setting"] == "").all()
    spatial = table.loc[table["task"] == "spatial", "answer"].tolist()
    assert spatial == ["yes", "no", "yes"]
    image_104 = (coco_paths["image_dir"] / "COCO_val2014_000000000104.jpg").read_bytes()
    assert (table.loc[table["image_id"] == "coco-104", "image"] == image_104).all()


def test_build_coco_tasks_sampling_is_seeded(coco_paths):
    args = (coco_paths["annotations"], coco_paths["image_dir"])
    first = coco.build_coco_tasks(*args, n_per_task=3, seed=0)
    again = coco.build_coco_tasks(*args, n_per_task=3, seed=0)
    pd.testing.assert_frame_equal(first, again)
    assert first["question_id"].tolist() == [
        "coco-counting-101-18",
        "coco-counting-104-88",
        "coco-counting-103-15",
        "coco-spatial-103-0",
        "coco-spatial-104-0",
        "coco-spatial-101-0",
        "coco-object_id-104-2",
        "coco-object_id-102-2",
        "coco-object_id-103-3",
    ]
    _check_against_expected(first)
    # at most one question per image and task by default
    assert not first.duplicated(["task", "image_id"]).any()
    other = coco.build_coco_tasks(*args, n_per_task=3, seed=1)
    assert other["question_id"].tolist() != first["question_id"].tolist()
    # a task's sample does not depend on which other tasks are built
    alone = coco.build_coco_tasks(*args, n_per_task={"object_id": 3}, seed=0, tasks=("object_id",))
    assert alone["question_id"].tolist() == first["question_id"].tolist()[6:]


def test_build_coco_tasks_warns_when_short(coco_paths):
    with pytest.warns(UserWarning, match=r"spatial: only 3 questions .*\(asked for 5\)"):
        table = coco.build_coco_tasks(
            coco_paths["annotations"], coco_paths["image_dir"], 5, seed=0, tasks=("spatial",)
        )
    assert len(table) == 3


@pytest.mark.filterwarnings("ignore:COCO .* only")
def test_coco_missing_inputs_name_the_config_key(coco_paths, tmp_path):
    annotations, image_dir = coco_paths["annotations"], coco_paths["image_dir"]
    with pytest.raises(FileNotFoundError, match="datasets.<name>.coco.annotations"):
        coco.build_coco_tasks(tmp_path / "nope.json", image_dir, 3, seed=0)
    with pytest.raises(FileNotFoundError, match="`datasets.<name>.coco.annotations` is not set"):
        coco.build_coco_tasks(None, image_dir, 3, seed=0)
    with pytest.raises(FileNotFoundError, match="datasets.<name>.coco.image_dir"):
        coco.build_coco_tasks(annotations, tmp_path / "no_images", 3, seed=0)
    missing = image_dir / "COCO_val2014_000000000103.jpg"
    missing.unlink()
    with pytest.raises(
        FileNotFoundError, match=r"COCO_val2014_000000000103\.jpg.*datasets.<name>.coco.image_dir"
    ):
        coco.build_coco_tasks(annotations, image_dir, 50, seed=0, max_per_image=4)
    broken = tmp_path / "broken.json"
    content = coco_instances()
    del content["categories"]
    broken.write_text(json.dumps(content))
    with pytest.raises(ValueError, match="no 'categories' list"):
        coco.load_coco_instances(broken)
    with pytest.raises(ValueError, match="subset of"):
        coco.build_coco_tasks(annotations, image_dir, 3, seed=0, tasks=("colour",))


# --------------------------------------------------------------------------------------------
# COCO download (a fake opener; never the real network)


def test_coco_download_unreachable(tmp_path, no_network):
    def unreachable(url, timeout):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    with pytest.raises(pope.DataUnavailableError) as info:
        coco.download_coco_val2014(tmp_path, image_ids=[42], opener=unreachable)
    message = str(info.value)
    for needle in (
        "annotations_trainval2014.zip",
        "unreachable",
        "`datasets.<name>.coco.annotations`",
        "`datasets.<name>.coco.image_dir`",
    ):
        assert needle in message
    assert not list(tmp_path.rglob("*.zip"))  # no half-written archive left behind


def test_coco_download_with_fake_server(tmp_path, no_network):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("annotations/instances_val2014.json", json.dumps(coco_instances()))
    image = encode_image((8, 8), (1, 2, 3))
    served = {
        "http://images.cocodataset.org/annotations/annotations_trainval2014.zip": archive.getvalue(),
        "http://images.cocodataset.org/val2014/COCO_val2014_000000000101.jpg": image,
    }
    requested = []

    def opener(url, timeout):
        requested.append(url)
        return contextlib.closing(io.BytesIO(served[url]))

    paths = coco.download_coco_val2014(tmp_path, image_ids=[101], opener=opener)
    assert json.loads(paths["annotations"].read_text()) == coco_instances()
    assert (paths["image_dir"] / "COCO_val2014_000000000101.jpg").read_bytes() == image
    coco.download_coco_val2014(tmp_path, image_ids=[101], opener=opener)  # present files are kept
    assert requested == list(served)


class _Response(io.BytesIO):
    """A urlopen response: bytes, an HTTP status and a Content-Length header."""

    def __init__(self, data: bytes, status: int = 200, fail_after: int | None = None):
        super().__init__(data)
        self.status, self.headers, self.fail_after = (
            status,
            {"Content-Length": str(len(data))},
            fail_after,
        )

    def read(self, size=-1):
        if self.fail_after is not None and self.tell() >= self.fail_after:
            raise ConnectionResetError("connection reset mid-download")
        limit = size if self.fail_after is None else min(size, self.fail_after - self.tell())
        return super().read(limit)


def _archive_bytes() -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("annotations/instances_val2014.json", json.dumps(coco_instances()))
        zf.writestr("padding.bin", bytes(range(256)) * 64)  # stored incompressible-ish: a few KB
    return archive.getvalue()


def test_coco_download_resumes_and_records_checksums(tmp_path, no_network):
    data = _archive_bytes()
    url = coco.coco_urls()["annotations"]
    requests = []

    def opener(request, timeout):
        requests.append(request)
        if isinstance(request, str):  # first attempt: the connection drops half way
            return _Response(data, fail_after=len(data) // 2)
        start = int(request.get_header("Range").removeprefix("bytes=").rstrip("-"))
        return _Response(data[start:], status=206)

    with pytest.raises(pope.DataUnavailableError, match="annotations_trainval2014.zip"):
        coco.download_coco_val2014(tmp_path, image_ids=[], opener=opener)
    part = tmp_path / "downloads" / "annotations_trainval2014.zip.part"
    assert (
        part.stat().st_size == len(data) // 2
    )  # kept for the next try, never under the final name
    assert not (tmp_path / "annotations").exists()

    result = coco.download_coco_val2014(tmp_path, image_ids=[], opener=opener)
    assert requests[-1].get_header("Range") == f"bytes={len(data) // 2}-"
    assert json.loads(result["annotations"].read_text()) == coco_instances()
    digest = hashlib.sha256(data).hexdigest()
    assert result["files"] == [{"url": url, "size": len(data), "sha256": digest}]
    assert (
        not part.exists() and not (tmp_path / "downloads" / "annotations_trainval2014.zip").exists()
    )


def test_coco_download_refuses_a_checksum_mismatch(tmp_path, no_network):
    data = _archive_bytes()
    url = coco.coco_urls()["annotations"]
    recorded = {url: {"size": len(data), "sha256": "0" * 64}}
    with pytest.raises(pope.DataUnavailableError, match="lock file records .* sha256 0000") as info:
        coco.download_coco_val2014(
            tmp_path, image_ids=[], opener=lambda r, timeout: _Response(data), expected=recorded
        )
    assert "Delete that file and rerun" in str(info.value)
    assert not (tmp_path / "annotations").exists()
    assert (tmp_path / "downloads" / "annotations_trainval2014.zip.corrupt").is_file()

    good = {url: {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}}
    (tmp_path / "downloads" / "annotations_trainval2014.zip.corrupt").unlink()
    result = coco.download_coco_val2014(
        tmp_path, image_ids=[], opener=lambda r, timeout: _Response(data), expected=good
    )
    assert result["annotations"].is_file()
