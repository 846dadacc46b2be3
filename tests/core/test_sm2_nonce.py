"""SM2 request signatures take their nonce from the OS CSPRNG, never from ``random``."""

from __future__ import annotations

import random
from typing import NoReturn

import pytest
from gmssl import func as gmssl_func
from gmssl import sm2 as gmssl_sm2

from gateway.platforms.signing import (
    HEADER_NONCE,
    HEADER_PAASID,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    Signer,
    SigningKeys,
    sm2_nonce,
    sm2_public_key,
    verify_request,
)

# a fixed test key for 福州市第一医院's account on the provincial platform
PRIVATE = "3945208f7b2144b13f36e38ac6d39f95889393692860b51a42fb81ef4df7c5b8"
KEYS = SigningKeys(scheme="sm2", paasid="fj_fzsdyyy_350102", sm2_private_key=PRIVATE,
                   sm2_public_key=sm2_public_key(PRIVATE))
BODY = ('{"infno":"3505","input":{"selinfo":{"med_list_codg":"XL02BGA045A001010104520",'
        '"fixmedins_hilist_name":"他达拉非片","prsc_dr_name":"王建国","sel_retn_cnt":28}}}'
        ).encode()
NOW = 1_790_000_000.0
NONCE = "5f0c1e2d3b4a69788796a5b4c3d2e1f0"


def _sealed_after_seeding() -> dict[str, str]:
    random.seed(0)
    _, headers = Signer(KEYS).seal(BODY, NOW, nonce=NONCE)
    return headers


def test_two_signatures_of_the_same_request_differ_even_with_random_seeded_alike() -> None:
    first, second = _sealed_after_seeding(), _sealed_after_seeding()
    assert first[HEADER_NONCE] == second[HEADER_NONCE]
    assert first[HEADER_TIMESTAMP] == second[HEADER_TIMESTAMP]
    assert first[HEADER_SIGNATURE] != second[HEADER_SIGNATURE]
    for headers in (first, second):
        assert headers[HEADER_PAASID] == KEYS.paasid
        assert verify_request(KEYS, headers, BODY, NOW) == BODY


def _no_random(*_args: object, **_kwargs: object) -> NoReturn:
    raise AssertionError("SM2 signing drew from the random module")


def test_signing_never_touches_the_random_module(monkeypatch: pytest.MonkeyPatch) -> None:
    # every name through which gmssl reaches Python's Mersenne Twister
    for module in (gmssl_func, gmssl_sm2):
        monkeypatch.setattr(module, "choice", _no_random)
    monkeypatch.setattr(gmssl_func, "random_hex", _no_random)
    for name in ("random", "randint", "randrange", "getrandbits", "choice", "choices"):
        monkeypatch.setattr(random, name, _no_random)
    _, headers = Signer(KEYS).seal(BODY, NOW)
    assert verify_request(KEYS, headers, BODY, NOW) == BODY


def test_nonces_are_in_the_curve_order_range_at_full_width() -> None:
    order = int(gmssl_sm2.default_ecc_table["n"], 16)
    nonces = [sm2_nonce() for _ in range(200)]
    assert all(len(k) == 64 for k in nonces)
    assert all(1 <= int(k, 16) <= order - 1 for k in nonces)
    assert len(set(nonces)) == len(nonces)
