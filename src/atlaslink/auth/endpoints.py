"""Account API: who am I, API tokens, and user administration."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from atlaslink.auth import service
from atlaslink.auth.permissions import Permission, Role
from atlaslink.errors import NotFound
from atlaslink.models import User
from atlaslink.registry.schemas import Page
from atlaslink.registry.service import paginate
from atlaslink.web.deps import DB, ApiPrincipal

router = APIRouter(tags=["accounts"])


class Me(BaseModel):
    username: str
    display_name: str
    role: Role
    unit_id: int | None
    country: str | None
    permissions: list[str]


class TokenOut(BaseModel):
    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    expires_days: int | None = Field(default=None, ge=1, le=3650)


class TokenCreated(TokenOut):
    token: str = Field(description="Shown once; only a hash is stored.")


class UserOut(BaseModel):
    username: str
    display_name: str
    email: str
    role: Role
    unit_id: int | None
    country: str | None
    disabled: bool
    totp_enrolled: bool


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=2, max_length=100)
    display_name: str = Field(default="", max_length=200)
    email: str = Field(default="", max_length=200)
    role: Role
    password: str = Field(min_length=12, max_length=200)
    unit_code: str | None = None
    country: str | None = None


class UserPage(BaseModel):
    items: list[UserOut]
    total: int
    page: int
    per_page: int


def _user(db: DB, who: ApiPrincipal) -> User:
    user = db.get(User, who.user_id)
    assert user is not None
    return user


def _token_out(t: object) -> TokenOut:
    return TokenOut.model_validate(t, from_attributes=True)


def _user_out(u: User) -> UserOut:
    return UserOut(
        username=u.username,
        display_name=u.display_name,
        email=u.email,
        role=Role(u.role),
        unit_id=u.unit_id,
        country=u.country_iso2,
        disabled=u.disabled,
        totp_enrolled=u.totp_enrolled,
    )


@router.get("/me", response_model=Me)
def me(db: DB, who: ApiPrincipal) -> Me:
    user = _user(db, who)
    return Me(
        username=user.username,
        display_name=user.display_name,
        role=Role(user.role),
        unit_id=user.unit_id,
        country=user.country_iso2,
        permissions=sorted(p.value for p in who.permissions),
    )


@router.get("/tokens", response_model=Page[TokenOut])
def list_tokens(
    db: DB,
    who: ApiPrincipal,
    page: Annotated[int, Query(ge=1)] = 1,
    per_page: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Any:
    """The caller's own tokens, newest first (never the secret itself)."""
    who.require(Permission.TOKENS_OWN)
    tokens = [_token_out(t) for t in service.list_tokens(db, _user(db, who).id)]
    return paginate(tokens, page, per_page)


@router.post("/tokens", response_model=TokenCreated, status_code=201)
def create_token(data: TokenCreate, db: DB, who: ApiPrincipal) -> TokenCreated:
    who.require(Permission.TOKENS_OWN)
    issued = service.create_token(db, _user(db, who), data.name, expires_days=data.expires_days)
    return TokenCreated(**_token_out(issued.record).model_dump(), token=issued.token)


@router.delete("/tokens/{token_id}", response_model=TokenOut)
def revoke_token(token_id: int, db: DB, who: ApiPrincipal) -> TokenOut:
    who.require(Permission.TOKENS_OWN)
    return _token_out(service.revoke_token(db, _user(db, who), token_id))


@router.get("/users", response_model=UserPage)
def list_users(
    db: DB,
    who: ApiPrincipal,
    page: Annotated[int, Query(ge=1)] = 1,
    per_page: Annotated[int, Query(ge=1, le=500)] = 50,
) -> UserPage:
    who.require(Permission.USERS_MANAGE)
    users, total = service.list_users(db, offset=(page - 1) * per_page, limit=per_page)
    return UserPage(items=[_user_out(u) for u in users], total=total, page=page, per_page=per_page)


@router.post("/users", response_model=UserOut, status_code=201)
def create_user(data: UserCreate, db: DB, who: ApiPrincipal) -> UserOut:
    who.require(Permission.USERS_MANAGE)
    user = service.create_user(
        db,
        who,
        username=data.username,
        display_name=data.display_name,
        email=data.email,
        role=data.role,
        password=data.password,
        unit_code=data.unit_code,
        country=data.country,
    )
    return _user_out(user)


@router.post("/users/{username}/disable", response_model=UserOut)
def disable_user(username: str, db: DB, who: ApiPrincipal) -> UserOut:
    who.require(Permission.USERS_MANAGE)
    if username.lower() == who.label:
        raise NotFound("You cannot disable your own account.")
    return _user_out(service.set_disabled(db, who, username, True))
