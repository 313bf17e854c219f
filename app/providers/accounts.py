"""A provider's settings in their three forms: validated by its type's model, stored (secret
fields sealed apart), and opened for an attempt (`ProviderAccount`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import SecretStr, ValidationError

from app.core.crypto import SecretBox
from app.providers.base import ProviderAccount, ProviderSettings, ProviderType
from app.providers.models import Provider


def validated(provider_type: ProviderType, raw: Mapping[str, Any]) -> ProviderSettings:
    """`raw` checked by the type's settings model; 422 naming each field under `settings`.

    Only each error's place, message and kind are answered (never the input: it may be a
    secret).
    """
    try:
        return provider_type.settings_model.model_validate(dict(raw))
    except ValidationError as exc:
        errors = [
            {
                "loc": ["body", "settings", *err.get("loc", ())],
                "msg": err.get("msg", ""),
                "type": err.get("type", ""),
            }
            for err in exc.errors()
        ]
        raise RequestValidationError(errors) from None


def stored(
    box: SecretBox, settings: ProviderSettings, keep: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """(non-secret settings, sealed secrets): each secret field that is set, sealed; `keep`
    holds sealed values to carry over as they are (a PATCH that did not change them)."""
    secret_names = settings.secret_field_names()
    plain = settings.model_dump(mode="json", exclude=set(secret_names))
    sealed: dict[str, str] = {}
    for name in secret_names:
        value = getattr(settings, name)
        if value is None:
            continue
        if keep is not None and name in keep:
            sealed[name] = keep[name]
        else:
            assert isinstance(value, SecretStr)
            sealed[name] = box.seal(value.get_secret_value())
    return plain, sealed


def raw_settings(box: SecretBox, row: Provider) -> dict[str, Any]:
    """The row's settings with its secrets opened, as the type's model reads them (raises
    SecretBoxError when one cannot be opened)."""
    return {**row.settings, **{k: box.open(v) for k, v in row.secrets_sealed.items()}}


def opened(box: SecretBox, provider_type: ProviderType, row: Provider) -> ProviderAccount:
    """The account an attempt uses: settings validated, secrets opened."""
    settings = provider_type.settings_model.model_validate(raw_settings(box, row))
    return ProviderAccount(
        id=row.id,
        client_id=row.client_id,
        name=row.name,
        type=row.type,
        channel=row.channel,
        settings=settings,
    )
