"""Accounts (patch 6): a 12-digit access key id selects the moto account."""

from __future__ import annotations

import os
from typing import Callable

from moto.core.responses import BaseResponse

from .common import ACCOUNT_KEY


def wrap_get_current_account(original: Callable) -> Callable:
    def get_current_account(self: BaseResponse) -> str:
        """A request signed with access key id `<12 digits>` acts in that account (unless
        MOTO_ACCOUNT_ID or the x-moto-account-id header says otherwise)."""
        if "MOTO_ACCOUNT_ID" not in os.environ and "x-moto-account-id" not in self.headers:
            match = ACCOUNT_KEY.search(self.headers.get("Authorization") or "")
            if match:
                return match.group(1)
        return original(self)

    return get_current_account
