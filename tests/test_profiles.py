"""Tests for tiled_core.profiles, including agreement with the reference tiled.profiles."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from tiled_core import profiles
from tiled_core.profiles import (
    ProfileError,
    ProfileExists,
    ProfileNotFound,
    ProfileWarning,
    create_profile,
    delete_profile,
    get_default_profile_name,
    list_profiles,
    load_profiles,
    paths,
    profile_to_from_uri_kwargs,
    resolve_profile,
    set_default_profile_name,
)


# ---------------------------------------------------------------- helpers


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    """Isolated site / environment / user profile directories (not created yet)."""
    site = tmp_path / "site" / "profiles"
    prefix = tmp_path / "prefix"
    user = tmp_path / "user" / "profiles"
    monkeypatch.setenv("TILED_SITE_PROFILES", str(site))
    monkeypatch.setenv("TILED_PROFILES", str(user))
    monkeypatch.setattr(sys, "prefix", str(prefix))
    return SimpleNamespace(site=site, env=prefix / "etc" / "tiled" / "profiles", user=user)


def write(directory: Path, filename: str, content) -> Path:
    """Write *content* (YAML-dumped unless a string) to directory/filename."""
    directory.mkdir(parents=True, exist_ok=True)
    filepath = directory / filename
    text = content if isinstance(content, str) else yaml.safe_dump(content)
    filepath.write_text(text)
    return filepath


def reference_profiles():
    """A fresh copy of the reference tiled.profiles, evaluated under the current env.

    The reference computes its search path at import time, so each test loads
    its own copy (not registered in sys.modules) instead of reloading tiled's.
    """
    import tiled

    source = Path(tiled.__file__).parent / "profiles.py"
    spec = importlib.util.spec_from_file_location("tiled._profiles_under_test", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def quiet(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args, **kwargs)


# ------------------------------------------------------------ directories


def test_paths_with_env_vars(dirs):
    assert paths() == [dirs.site, dirs.env, dirs.user]
    assert paths() == reference_profiles().paths


def test_paths_default_locations_match_reference(tmp_path, monkeypatch):
    monkeypatch.delenv("TILED_SITE_PROFILES", raising=False)
    monkeypatch.delenv("TILED_PROFILES", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-home"))
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path / "xdg-dirs"))
    result = paths()
    assert result == reference_profiles().paths
    assert result[0] == Path("/etc/tiled/profiles")
    assert tmp_path / "home" / ".config" / "tiled" / "profiles" in result
    assert result[-1] == tmp_path / "xdg-home" / "tiled" / "profiles"


def test_paths_drop_duplicates(tmp_path, monkeypatch):
    monkeypatch.delenv("TILED_SITE_PROFILES", raising=False)
    monkeypatch.delenv("TILED_PROFILES", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    # XDG user dir == hard-coded user dir: listed once.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    result = paths()
    assert len(result) == len(set(result))
    assert result[-1] == tmp_path / "home" / ".config" / "tiled" / "profiles"
    assert result == reference_profiles().paths


def test_paths_read_env_at_call_time(dirs, tmp_path, monkeypatch):
    assert paths()[-1] == dirs.user
    monkeypatch.setenv("TILED_PROFILES", str(tmp_path / "elsewhere"))
    assert paths()[-1] == tmp_path / "elsewhere"


def test_empty_env_var_counts_as_unset(dirs, tmp_path, monkeypatch):
    monkeypatch.setenv("TILED_PROFILES", "")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert tmp_path / "home" / ".config" / "tiled" / "profiles" in paths()
    assert Path("") not in paths()


# ------------------------------------------------------------- precedence


def test_later_directories_override_earlier(dirs):
    write(dirs.site, "a.yml", {"p": {"uri": "http://site"}, "s": {"uri": "http://s"}})
    write(dirs.env, "b.yml", {"p": {"uri": "http://env"}, "e": {"uri": "http://e"}})
    user_file = write(dirs.user, "c.yml", {"p": {"uri": "http://user"}})
    assert resolve_profile("p")["uri"] == "http://user"
    assert list_profiles() == {
        "p": user_file,
        "s": dirs.site / "a.yml",
        "e": dirs.env / "b.yml",
    }
    user_file.unlink()
    assert resolve_profile("p")["uri"] == "http://env"  # re-read: nothing cached


def test_only_yaml_files_that_are_not_dotfiles(dirs):
    write(dirs.user, "a.yaml", {"a": {"uri": "http://a"}})
    write(dirs.user, ".hidden.yml", {"hidden": {"uri": "http://h"}})
    write(dirs.user, "notes.txt", "x: {uri: http://x}\n")
    write(dirs.user, "README", "y: {uri: http://y}\n")
    (dirs.user / "dir.yml").mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert list(list_profiles()) == ["a"]


def test_duplicate_in_same_directory_is_dropped_with_warning(dirs):
    write(dirs.user, "one.yml", {"dup": {"uri": "http://1"}, "ok": {"uri": "http://ok"}})
    write(dirs.user, "two.yml", {"dup": {"uri": "http://2"}})
    with pytest.warns(ProfileWarning, match="more than one file") as record:
        names = list_profiles()
    assert names == {"ok": dirs.user / "one.yml"}
    message = str(record[0].message)
    assert "one.yml" in message and "two.yml" in message
    with pytest.raises(ProfileError, match="more than one file") as info:
        quiet(resolve_profile, "dup")
    assert not isinstance(info.value, KeyError)


def test_duplicate_in_lower_directory_resolved_by_higher(dirs):
    write(dirs.site, "one.yml", {"dup": {"uri": "http://1"}})
    write(dirs.site, "two.yml", {"dup": {"uri": "http://2"}})
    write(dirs.user, "mine.yml", {"dup": {"uri": "http://mine"}})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_profile("dup")["uri"] == "http://mine"


def test_duplicate_in_higher_directory_hides_lower(dirs):
    write(dirs.site, "site.yml", {"dup": {"uri": "http://site"}})
    write(dirs.user, "one.yml", {"dup": {"uri": "http://1"}})
    write(dirs.user, "two.yml", {"dup": {"uri": "http://2"}})
    assert "dup" not in quiet(list_profiles)


# ---------------------------------------------------- environment variables


def test_env_vars_expanded_in_string_values(dirs, monkeypatch):
    monkeypatch.setenv("TC_HOST", "example.org")
    monkeypatch.setenv("TC_KEY", "secret")
    write(
        dirs.user,
        "a.yml",
        {
            "p": {
                "uri": "https://$TC_HOST/api",
                "headers": {"Authorization": "Apikey ${TC_KEY}", "$TC_HOST": "x"},
                "cache": {"filepath": "/tmp/$TC_HOST/cache.db", "capacity": 10},
            },
            "d": {"direct": {"trees": [{"path": "/", "args": {"dir": "${TC_HOST}"}}]}},
        },
    )
    p = resolve_profile("p")
    assert p["uri"] == "https://example.org/api"
    assert p["headers"] == {"Authorization": "Apikey secret", "$TC_HOST": "x"}  # keys untouched
    assert p["cache"] == {"filepath": "/tmp/example.org/cache.db", "capacity": 10}
    assert resolve_profile("d")["direct"]["trees"][0]["args"]["dir"] == "example.org"
    assert load_profiles()["p"][1] == p


def test_dollar_dollar_is_a_literal_dollar(dirs, monkeypatch):
    monkeypatch.delenv("TC_UNSET", raising=False)
    write(dirs.user, "a.yml", {"p": {"uri": "http://h", "headers": {"X": "a$$TC_UNSET b$ c"}}})
    assert resolve_profile("p")["headers"]["X"] == "a$TC_UNSET b$ c"


def test_missing_env_var_raises_only_when_that_profile_is_resolved(dirs, monkeypatch):
    monkeypatch.delenv("TC_MISSING_KEY", raising=False)
    filepath = write(
        dirs.user,
        "a.yml",
        {
            "needs": {"uri": "http://h", "headers": {"Authorization": "Apikey ${TC_MISSING_KEY}"}},
            "other": {"uri": "http://other"},
        },
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert set(list_profiles()) == {"needs", "other"}
        assert resolve_profile("other") == {"uri": "http://other"}
        # load_profiles leaves it as written, like the reference.
        assert load_profiles()["needs"][1]["headers"]["Authorization"] == "Apikey ${TC_MISSING_KEY}"
    with pytest.raises(ProfileError) as info:
        resolve_profile("needs")
    message = str(info.value)
    assert "$TC_MISSING_KEY" in message and "'needs'" in message and str(filepath) in message
    monkeypatch.setenv("TC_MISSING_KEY", "k")
    assert resolve_profile("needs")["headers"]["Authorization"] == "Apikey k"


def test_env_var_can_supply_an_enum_value(dirs, monkeypatch):
    monkeypatch.setenv("TC_CLIENTS", "dask")
    write(dirs.user, "a.yml", {"p": {"uri": "http://h", "structure_clients": "$TC_CLIENTS"}})
    assert resolve_profile("p")["structure_clients"] == "dask"


def test_schema_error_caused_by_missing_var_mentions_it(dirs, monkeypatch):
    monkeypatch.delenv("TC_CLIENTS", raising=False)
    write(dirs.user, "a.yml", {"p": {"uri": "http://h", "structure_clients": "$TC_CLIENTS"}})
    with pytest.raises(ProfileError, match="TC_CLIENTS"):
        quiet(resolve_profile, "p")


# ------------------------------------------------------------------ schema


def test_full_valid_profile(dirs):
    content = {
        "uri": "http://h/api/v1",
        "headers": {"Authorization": "Apikey x"},
        "structure_clients": {"array": "mod:ArrayClient", "my_spec": "mod:Spec"},
        "cache": {
            "filepath": "/tmp/c.db",
            "capacity": 500_000_000,
            "max_item_size": 1e6,
            "readonly": True,
        },
        "timeout": {"connect": 1, "read": 60, "write": 60.5, "pool": 5},
        "token_cache": "/tmp/tokens",
        "max_connections": 4,
        "verify": False,
        "username": "old",
        "auth_provider": "old",
    }
    write(dirs.user, "a.yml", {"full": content})
    # Wider than the reference: a single number, or None ("no limit") per phase.
    write(
        dirs.user,
        "b.yml",
        {
            "num": {"uri": "http://h", "timeout": 5},
            "none": {"uri": "http://h", "timeout": {"read": None}},
        },
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_profile("full") == content
        assert resolve_profile("num")["timeout"] == 5
        assert resolve_profile("none")["timeout"] == {"read": None}
    (dirs.user / "b.yml").unlink()
    assert reference_profiles().list_profiles() == list_profiles() == {"full": dirs.user / "a.yml"}


BAD_PROFILES = [
    ({"uri": "http://h", "api_key": "x"}, "api_key"),
    ({"uri": "http://h", "headrs": {}}, "headrs"),
    ({"uri": 5}, "uri"),
    ({"uri": "http://h", "direct": {}}, "uri"),
    ({"headers": {}}, "uri"),
    ({"uri": "http://h", "verify": "no"}, "verify"),
    ({"uri": "http://h", "max_connections": 2.5}, "max_connections"),
    ({"uri": "http://h", "structure_clients": "numba"}, "structure_clients"),
    ({"uri": "http://h", "structure_clients": {"array": 1}}, "structure_clients.array"),
    ({"uri": "http://h", "cache": {"capacity": "big"}}, "cache.capacity"),
    ({"uri": "http://h", "cache": {"size": 1}}, "cache.size"),
    ({"uri": "http://h", "timeout": "slow"}, "timeout"),
    ({"uri": "http://h", "timeout": {"conect": 1}}, "timeout.conect"),
    ({"uri": "http://h", "timeout": {"connect": 1, "connection": 1}}, "timeout"),
    ({"uri": "http://h", "headers": {"X-N": 5}}, "headers.X-N"),
    ("http://h", ""),
]


@pytest.mark.parametrize("content, key", BAD_PROFILES)
def test_schema_errors_name_file_profile_and_key(dirs, content, key):
    filepath = write(dirs.user, "bad.yml", {"bad": content, "good": {"uri": "http://good"}})
    with pytest.warns(ProfileWarning, match="Invalid profile 'bad'"):
        names = list_profiles()
    assert names == {"good": filepath}  # the rest of the file still loads
    with pytest.raises(ProfileError) as info:
        quiet(resolve_profile, "bad")
    message = str(info.value)
    assert str(filepath) in message and "'bad'" in message
    if key:
        assert f"key {key!r}" in message
    with pytest.raises(ProfileError, match="Invalid profile 'bad'"):
        load_profiles(strict=True)


def test_invalid_profile_shadows_lower_precedence_one(dirs):
    write(dirs.site, "site.yml", {"p": {"uri": "http://site"}})
    write(dirs.user, "user.yml", {"p": {"uri": "http://user", "bogus": 1}})
    with pytest.raises(ProfileError, match="bogus"):
        quiet(resolve_profile, "p")
    assert "p" not in quiet(list_profiles)


def test_non_string_profile_names_are_skipped(dirs):
    write(dirs.user, "a.yml", "1: {uri: http://one}\nok: {uri: http://ok}\n")
    with pytest.warns(ProfileWarning, match="names must be strings"):
        assert list(list_profiles()) == ["ok"]


# -------------------------------------------------------- malformed files


def test_malformed_yaml_is_skipped_with_warning_naming_file(dirs):
    bad = write(dirs.user, "broken.yml", "p: {uri: http://h\n  : [\n")
    write(dirs.user, "fine.yml", {"fine": {"uri": "http://fine"}})
    with pytest.warns(ProfileWarning, match="not valid YAML") as record:
        assert list(list_profiles()) == ["fine"]
    assert str(bad) in str(record[0].message)
    with pytest.raises(ProfileError, match="broken.yml"):
        load_profiles(strict=True)
    with pytest.raises(ProfileNotFound) as info:
        quiet(resolve_profile, "p")
    assert str(bad) in str(info.value) and "fine" in str(info.value)


@pytest.mark.parametrize(
    "text, match",
    [
        ("", "empty"),
        ("# only a comment\n", "empty"),
        ("- a\n- b\n", "mapping"),
        ("just text\n", "mapping"),
    ],
)
def test_empty_or_non_mapping_files(dirs, text, match):
    filepath = write(dirs.user, "odd.yml", text)
    with pytest.warns(ProfileWarning, match=match) as record:
        assert list_profiles() == {}
    assert str(filepath) in str(record[0].message)
    with pytest.raises(ProfileError, match="odd.yml"):
        load_profiles(strict=True)


def test_not_found_is_a_key_error_listing_names(dirs):
    write(dirs.user, "a.yml", {"alpha": {"uri": "http://a"}, "beta": {"uri": "http://b"}})
    with pytest.raises(KeyError) as info:
        resolve_profile("gamma")
    error = info.value
    assert isinstance(error, ProfileNotFound) and isinstance(error, ProfileError)
    assert isinstance(error, ValueError)
    text = str(error)
    assert "'gamma'" in text and "alpha" in text and "beta" in text and str(dirs.user) in text


def test_resolve_returns_an_independent_copy(dirs):
    write(dirs.user, "a.yml", {"p": {"uri": "http://h", "headers": {"A": "1"}}})
    resolve_profile("p")["headers"]["A"] = "changed"
    assert resolve_profile("p")["headers"] == {"A": "1"}


# --------------------------------------------------------- default profile


def test_default_profile_get_set_clear(dirs):
    write(dirs.user, "a.yml", {"p": {"uri": "http://h"}})
    default_file = dirs.user.parent / "default_profile"
    assert get_default_profile_name() is None
    set_default_profile_name(None)  # clearing when unset is fine
    set_default_profile_name("p")
    assert default_file.read_text() == "p"
    assert get_default_profile_name() == "p"
    assert reference_profiles().get_default_profile_name() == "p"
    with pytest.raises(ProfileNotFound):
        set_default_profile_name("nope")
    assert get_default_profile_name() == "p"
    set_default_profile_name(None)
    assert not default_file.exists()
    assert get_default_profile_name() is None


def test_default_profile_written_by_reference_is_read(dirs):
    write(dirs.user, "a.yml", {"p": {"uri": "http://h"}})
    reference_profiles().set_default_profile_name("p")
    assert get_default_profile_name() == "p"
    (dirs.user.parent / "default_profile").write_text("p\n")  # hand-edited
    assert get_default_profile_name() == "p"


# ----------------------------------------------------------- create/delete


def test_create_profile(dirs):
    filepath = create_profile("http://lab:8000/api/v1", "lab", verify=False)
    assert filepath == dirs.user / "lab.yml"
    expected = {"lab": {"uri": "http://lab:8000/api/v1", "verify": False}}
    assert yaml.safe_load(filepath.read_text()) == expected
    assert resolve_profile("lab") == {"uri": "http://lab:8000/api/v1", "verify": False}
    assert reference_profiles().list_profiles() == {"lab": filepath}
    with pytest.raises(ProfileExists, match="overwrite"):
        create_profile("http://other", "lab")
    create_profile("http://other", "lab", overwrite=True)
    assert resolve_profile("lab") == {"uri": "http://other", "verify": True}


def test_create_profile_matches_reference_file(dirs, tmp_path, monkeypatch):
    ours = create_profile(name="lab", uri="http://lab", verify=True)
    monkeypatch.setenv("TILED_PROFILES", str(tmp_path / "ref" / "profiles"))
    theirs = reference_profiles().create_profile(uri="http://lab", name="lab")
    assert yaml.safe_load(ours.read_text()) == yaml.safe_load(theirs.read_text())


@pytest.mark.parametrize("name", ["", ".hidden", "a/b", "../up"])
def test_create_profile_rejects_bad_names(dirs, name):
    with pytest.raises(ProfileError, match="Invalid profile name"):
        create_profile("http://h", name)


def test_create_profile_rejects_bad_values(dirs):
    with pytest.raises(ProfileError, match="uri"):
        create_profile(5, "p")
    with pytest.raises(ProfileError, match="verify"):
        create_profile("http://h", "p", verify="yes")
    assert not (dirs.user / "p.yml").exists()


def test_create_profile_refuses_to_make_a_collision(dirs):
    write(dirs.user, "many.yml", {"lab": {"uri": "http://x"}})
    with pytest.raises(ProfileExists, match="many.yml"):
        create_profile("http://h", "lab", overwrite=True)


def test_delete_profile(dirs):
    create_profile("http://h", "lab")
    assert delete_profile("lab") == dirs.user / "lab.yml"
    assert list_profiles() == {}
    assert delete_profile("lab") is None


def test_delete_profile_highest_precedence_first(dirs):
    site = write(dirs.site, "p.yaml", {"p": {"uri": "http://site"}})
    user = write(dirs.user, "p.yml", {"p": {"uri": "http://user"}})
    assert delete_profile("p") == user
    assert site.exists()
    assert resolve_profile("p")["uri"] == "http://site"


def test_delete_profile_refuses_files_with_other_profiles(dirs):
    filepath = write(dirs.user, "p.yml", {"p": {"uri": "http://h"}, "q": {"uri": "http://q"}})
    with pytest.raises(ProfileError, match="also defines"):
        delete_profile("p")
    assert filepath.exists()


def test_delete_profile_in_differently_named_file(dirs):
    write(dirs.user, "lab.yml", {"lab": {"uri": "http://h"}, "beamline": {"uri": "http://b"}})
    with pytest.raises(ProfileError, match="lab.yml"):
        delete_profile("beamline")
    assert delete_profile("never-existed") is None


# ----------------------------------------------------------- vs reference


def test_same_profiles_as_reference(dirs, monkeypatch):
    monkeypatch.setenv("TC_REF_KEY", "abc")
    write(
        dirs.site,
        "site.yml",
        {"shared": {"uri": "http://site"}, "site_only": {"uri": "http://s"}},
    )
    write(dirs.site, "clash1.yml", {"clash_low": {"uri": "http://1"}})
    write(dirs.site, "clash2.yaml", {"clash_low": {"uri": "http://2"}})
    write(dirs.env, "env.yaml", {"shared": {"uri": "http://env"}, "env_only": {"uri": "http://e"}})
    write(dirs.user, "user.yml", {
        "shared": {"uri": "http://user", "headers": {"Authorization": "Apikey ${TC_REF_KEY}"}},
        "clash_low": {"uri": "http://resolved"},
        "clash_high": {"uri": "http://a", "timeout": {"read": 60}},
    })
    write(
        dirs.user,
        "other.yml",
        {
            "clash_high": {"uri": "http://b"},
            "dask": {"uri": "http://d", "structure_clients": "dask"},
        },
    )
    write(dirs.user, ".ignored.yml", {"ignored": {"uri": "http://i"}})
    write(dirs.user, "ignored.txt", "ignored2: {uri: http://i}\n")

    reference = reference_profiles()
    assert reference.paths == paths()
    ours_loaded = quiet(load_profiles)
    theirs_loaded = quiet(reference.load_profiles)
    assert ours_loaded == theirs_loaded
    assert quiet(list_profiles) == quiet(reference.list_profiles)
    assert set(ours_loaded) == {"shared", "site_only", "env_only", "clash_low", "dask"}
    assert ours_loaded["shared"][1]["headers"]["Authorization"] == "Apikey abc"


def test_reference_accepts_what_we_write_and_list(dirs):
    write(dirs.user, "x.yml", {"x": {"uri": "http://x", "cache": {"capacity": 10}, "verify": True}})
    create_profile("http://y", "y")
    reference = reference_profiles()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert reference.list_profiles() == list_profiles()


# ---------------------------------------------------- from_uri conversion


def test_profile_to_from_uri_kwargs_basic():
    profile = {
        "uri": "http://h",
        "headers": {"A": "1"},
        "timeout": {"connection": 2, "read": 60},
        "cache": {"capacity": 10},
        "structure_clients": "dask",
        "max_connections": 4,
        "verify": False,
    }
    kwargs = profile_to_from_uri_kwargs(profile)
    assert kwargs == {**profile, "timeout": {"connect": 2, "read": 60}}
    kwargs["headers"]["A"] = "changed"
    kwargs["cache"]["capacity"] = 0
    assert profile["headers"] == {"A": "1"} and profile["cache"] == {"capacity": 10}
    assert profile_to_from_uri_kwargs({"uri": "http://h", "timeout": 3})["timeout"] == 3


def test_profile_to_from_uri_kwargs_passes_overrides_and_objects():
    sentinel = object()
    profile = {"uri": "http://h", "api_key": "k", "cache": sentinel, "timeout": sentinel}
    kwargs = profile_to_from_uri_kwargs(profile)
    assert kwargs == profile


def test_profile_to_from_uri_kwargs_drops_ignored_keys_with_warning():
    with pytest.warns(ProfileWarning) as record:
        kwargs = profile_to_from_uri_kwargs(
            {"uri": "http://h", "username": "u", "auth_provider": "a", "token_cache": "/t"}
        )
    assert kwargs == {"uri": "http://h"}
    assert len(record) == 3


def test_profile_to_from_uri_kwargs_rejects_direct_and_missing_uri():
    with pytest.raises(ProfileError, match="direct"):
        profile_to_from_uri_kwargs({"direct": {"trees": []}})
    with pytest.raises(ProfileError, match="uri"):
        profile_to_from_uri_kwargs({"headers": {}})
    with pytest.raises(ProfileError, match="not both"):
        profile_to_from_uri_kwargs({"uri": "http://h", "timeout": {"connect": 1, "connection": 2}})


def test_resolved_profile_feeds_from_uri_kwargs(dirs, monkeypatch):
    monkeypatch.setenv("TC_KEY", "k")
    write(dirs.user, "lab.yml", {"lab": {
        "uri": "http://127.0.0.1:8000/api/v1",
        "headers": {"Authorization": "Apikey ${TC_KEY}"},
        "cache": {"capacity": 200_000_000, "max_item_size": 1_000_000},
        "timeout": {"read": 60, "write": 60},
        "structure_clients": "dask",
    }})
    kwargs = profile_to_from_uri_kwargs({**resolve_profile("lab"), "structure_clients": "numpy"})
    assert kwargs["headers"] == {"Authorization": "Apikey k"}
    assert kwargs["timeout"] == {"read": 60, "write": 60}
    assert kwargs["structure_clients"] == "numpy"


def test_public_names_and_no_tiled_import():
    for name in profiles.__all__:
        assert hasattr(profiles, name)
    code = "import sys, tiled_core.profiles; assert 'tiled' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
