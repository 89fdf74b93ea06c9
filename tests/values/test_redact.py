"""Redaction: deny-listed names, secret-shaped strings, and their settings."""

from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coroscope._config import Config, ConfigError
from coroscope._denylist import DEFAULT_DENY, normalise, parse_deny_spec, parse_name_list
from coroscope.values._redact import (
    REDACTED,
    DenyList,
    NameFilter,
    scrub,
    scrub_cut,
)

# The defaults of the two tools coroscope's list must cover (as published by
# sentry_sdk.scrubber.DEFAULT_DENYLIST and Datadog's dynamic-instrumentation
# REDACTED_IDENTIFIERS); both compare whole names.
SENTRY_DEFAULTS = (
    "password", "passwd", "secret", "api_key", "apikey", "auth", "credentials", "mysql_pwd",
    "privatekey", "private_key", "token", "ip_address", "session", "csrftoken", "sessionid",
    "remote_addr", "x_csrftoken", "x_forwarded_for", "set_cookie", "cookie", "authorization",
    "x_api_key", "x_real_ip", "aiohttp_session", "connect.sid", "csrf_token", "csrf", "_csrf",
    "_csrf_token", "PHPSESSID", "_session", "symfony", "user_session", "_xsrf", "XSRF-TOKEN",
)  # fmt: skip
DATADOG_DEFAULTS = (
    "2fa", "accesstoken", "aiohttpsession", "apikey", "apisecret", "apisignature", "appkey",
    "applicationkey", "auth", "authorization", "authtoken", "ccnumber", "certificatepin",
    "cipher", "clientid", "clientsecret", "connectionstring", "connectsid", "cookie",
    "credentials", "creditcard", "csrf", "csrftoken", "cvv", "databaseurl", "dburl",
    "encryptionkey", "encryptionkeyid", "geolocation", "gpgkey", "ipaddress", "jti", "jwt",
    "licensekey", "masterkey", "mysqlpwd", "nonce", "oauth", "oauthtoken", "otp", "passhash",
    "passwd", "password", "passwordb", "pemfile", "pgpkey", "phpsessid", "pin", "pincode",
    "pkcs8", "privatekey", "publickey", "pwd", "recaptchakey", "refreshtoken", "routingnumber",
    "salt", "secret", "secretkey", "secrettoken", "securityanswer", "securitycode",
    "securityquestion", "serviceaccountcredentials", "session", "sessionid", "sessionkey",
    "setcookie", "signature", "signaturekey", "sshkey", "ssn", "symfony", "token",
    "transactionid", "twiliotoken", "usersession", "voterid", "xapikey", "xauthtoken",
    "xcsrftoken", "xforwardedfor", "xrealip", "xsrf", "xsrftoken",
)  # fmt: skip
ISSUE_LIST = (
    "password", "passwd", "secret", "token", "apikey", "auth", "credential", "cookie",
    "session", "csrf", "privatekey", "jwt", "ssn", "creditcard", "cvv", "signature",
)  # fmt: skip

# Secrets are drawn from Q-Z only; filler text never contains those letters, so any
# 8-character piece of a secret found in the output can only be a leak.
SECRET_ALPHABET = "QRSTUVWXYZ"
secrets_st = st.text(SECRET_ALPHABET, min_size=16, max_size=24)
filler_st = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters=SECRET_ALPHABET + "\r\n"),
    max_size=40,
)


def leaked(secret: str, output: str) -> bool:
    """Whether any 8-character piece of ``secret`` shows in ``output``."""
    return any(secret[i : i + 8] in output for i in range(len(secret) - 7))


class TestNames:
    """Deny-list matching of local, key and field names."""

    def test_normalise(self) -> None:
        """Case, `_`, `-`, `.` and spaces are ignored."""
        assert normalise("X-Api_Key.v 2") == "xapikeyv2"

    @pytest.mark.parametrize("name", SENTRY_DEFAULTS + DATADOG_DEFAULTS + ISSUE_LIST)
    def test_default_list_covers_sentry_and_datadog(self, name: str) -> None:
        """Every name Sentry or Datadog redacts by default is denied by the built-in list."""
        assert DenyList()(name)

    @pytest.mark.parametrize(
        "name",
        ["db_PASSWORD_2", "userPassword", "pass_word", "X-Api-Key", "oldAuthToken", "my.secret",
         "SESSION_ID", "csrfmiddlewaretoken", "credit-card-number", "rsa_private_key"],
    )  # fmt: skip
    def test_substrings_with_prefixes_and_suffixes(self, name: str) -> None:
        """Entries of four letters or more match anywhere in the normalised name."""
        assert DenyList()(name)

    @pytest.mark.parametrize(
        "name", ["ssn", "SSN", "user_ssn", "userSSN", "ssn2", "card-cvv", "P_I_N"]
    )
    def test_short_entries_match_whole_words(self, name: str) -> None:
        """Three-letter entries match the whole name or one word of it."""
        assert DenyList()(name)

    @pytest.mark.parametrize(
        "name", ["class_name", "mapping", "typing", "inside", "shipping", "options", "headers",
                 "environ", "count", "result", "description", "url", "user_id"],
    )  # fmt: skip
    def test_ordinary_names_are_kept(self, name: str) -> None:
        """Short entries do not hide names that merely contain their letters."""
        assert not DenyList()(name)

    def test_huge_names_are_denied(self) -> None:
        """A name too long to check cheaply is treated as secret."""
        assert DenyList()("x" * 10_000)

    def test_custom_list(self) -> None:
        """A custom list replaces the defaults; empty entries are ignored."""
        deny = DenyList(["tenant", "", "-"])
        assert deny("TENANT_ID") and not deny("password")
        assert deny.entries == ("tenant",)

    def test_name_filter(self) -> None:
        """Exclusions are exact names or fnmatch globs, case-sensitive."""
        keep_out = NameFilter(["request", "_tmp*", "x?"])
        assert keep_out("request") and keep_out("_tmp_buf") and keep_out("xy")
        assert not keep_out("Request") and not keep_out("requests") and not keep_out("xyz")
        assert not NameFilter([])


class TestSettings:
    """COROSCOPE_REDACT and COROSCOPE_LOCALS_EXCLUDE."""

    def test_extend(self) -> None:
        """Names are added to the built-in list."""
        assert parse_deny_spec("tenant, iban") == (*DEFAULT_DENY, "tenant", "iban")

    def test_replace(self) -> None:
        """A leading '=' replaces the built-in list; '=' alone empties it."""
        assert parse_deny_spec("=tenant") == ("tenant",)
        assert parse_deny_spec(" = ") == ()

    def test_bad_entry(self) -> None:
        """An entry with nothing to match is refused, naming the syntax."""
        with pytest.raises(ValueError, match="leading '='"):
            parse_deny_spec("password,__")

    def test_exclude_list(self) -> None:
        """The exclusion list is split on commas, blanks dropped."""
        assert parse_name_list(" request, ,_tmp* ") == ("request", "_tmp*")

    def test_from_environment(self) -> None:
        """The variables reach Config; a bad one is reported with its name."""
        config = Config.from_env({"COROSCOPE_REDACT": "=iban", "COROSCOPE_LOCALS_EXCLUDE": "a,b"})
        assert config.redact == ("iban",) and config.locals_exclude == ("a", "b")
        assert Config.from_env({}).redact == DEFAULT_DENY
        with pytest.raises(ConfigError, match="COROSCOPE_REDACT"):
            Config.from_env({"COROSCOPE_REDACT": "--"})


class TestShapes:
    """Secret-shaped text is redacted wherever it appears in a string."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("Authorization: Bearer abc.def", "Authorization: [redacted]"),
            ("headers bearer xyz123 sent", "headers bearer [redacted] sent"),
            ("Basic dXNlcjpwYXNz", "Basic [redacted]"),
            ("postgres://app:s3cret@db:5432/x", "postgres://app:[redacted]@db:5432/x"),
            ("redis://:p@ss/w@cache", "redis://:[redacted]@cache"),
            ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln ok", "jwt [redacted] ok"),
            ("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----!",
             "-----BEGIN RSA PRIVATE KEY-----[redacted]!"),
            ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl", "-----BEGIN OPENSSH PRIVATE KEY-----[redacted]"),
            ("id AKIAIOSFODNN7EXAMPLE", "id [redacted]"),
            ("a=1&password=hunter2&b=2", "a=1&password=[redacted]&b=2"),
            ('{"api_key": "sk live 1", "n": 1}', '{"api_key": [redacted], "n": 1}'),
            ("Cookie: sid=1; csrftoken=2\nnext", "Cookie: [redacted]\nnext"),
            ("CLIENT_SECRET=abc", "CLIENT_SECRET=[redacted]"),
        ],
    )  # fmt: skip
    def test_shapes(self, text: str, expected: str) -> None:
        """Each documented shape loses its secret and keeps its context."""
        assert scrub(text) == expected

    @pytest.mark.parametrize(
        "text",
        ["fetch-user", "/api/v1/users/42", "http://localhost:8000/api", "the password is long",
         "heyJude said hi", "12:30:00", "a3f9c2e1-77b0-4c1e-9d2a-5b6c7d8e9f00"],
    )  # fmt: skip
    def test_ordinary_text_is_kept(self, text: str) -> None:
        """Text without a secret shape comes back as the very same object."""
        assert scrub(text) is text

    def test_non_ascii_text(self) -> None:
        """Text whose lower-casing changes length is scanned case-insensitively."""
        assert scrub("İstanbul BEARER topsecret") == "İstanbul BEARER [redacted]"

    def test_cut_secrets(self) -> None:
        """A secret cut by truncation at the end of the kept text is redacted too."""
        assert scrub_cut("see postgres://app:hunt") == "see postgres://app:[redacted]"
        assert scrub_cut("key AKIAIOSF") == "key [redacted]"
        assert scrub_cut("see -----BEGIN PRIVATE KEY-----\nMII") == (
            "see -----BEGIN PRIVATE KEY-----[redacted]"
        )
        assert scrub_cut("base http://localhost:8080") == "base http://localhost:8080"

    @given(secret=secrets_st, before=filler_st, after=filler_st, shape=st.integers(0, 9))
    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    def test_property_shapes_never_leak(
        self, secret: str, before: str, after: str, shape: int
    ) -> None:
        """A secret in any shape, in any text, cut anywhere, never shows after scrubbing."""
        text = shaped(secret, shape, before, after)
        assert not leaked(secret, scrub(text))
        for cut in range(len(before), len(text), 3):
            assert not leaked(secret, scrub_cut(text[:cut]))


def shaped(secret: str, shape: int, before: str, after: str) -> str:
    """``secret`` inside one of the documented shapes, between filler texts."""
    forms = [
        f"Bearer {secret}",
        f"basic {secret}",
        f"https://user:{secret}@example.com/x",
        f"eyJhbGciOiJIUzI1NiJ9.{secret}.c2ln",
        f"-----BEGIN EC PRIVATE KEY-----\n{secret}\n-----END EC PRIVATE KEY-----",
        f"AKIA{secret[:16]}",
        f"password={secret}",
        f'"api_key": "{secret}"',
        f"Authorization: Token {secret}",
        f"Cookie: session={secret}; theme=dark",
    ]
    return f"{before} {forms[shape]} {after}"


assert set(SECRET_ALPHABET) <= set(string.ascii_uppercase)
assert REDACTED == "[redacted]"
