"""All server-rendered pages."""

from __future__ import annotations

from fastapi import APIRouter

from atlaslink.web.admin_pages import router as admin_router
from atlaslink.web.auth_pages import router as auth_router
from atlaslink.web.equipment_pages import router as equipment_router
from atlaslink.web.inbox_pages import router as inbox_router
from atlaslink.web.live_pages import router as live_router
from atlaslink.web.messages_pages import router as messages_router
from atlaslink.web.operations_actions import router as operations_actions_router
from atlaslink.web.operations_pages import router as operations_router
from atlaslink.web.registry_pages import router as registry_router
from atlaslink.web.rules_pages import router as rules_router

router = APIRouter(include_in_schema=False)
router.include_router(auth_router)
router.include_router(registry_router)
router.include_router(admin_router)
router.include_router(operations_router)
router.include_router(operations_actions_router)
router.include_router(inbox_router)
router.include_router(rules_router)
router.include_router(live_router)
router.include_router(messages_router)
router.include_router(equipment_router)
