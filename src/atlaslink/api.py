"""The REST API under /api/v1, assembled from the domains' endpoint modules."""

from __future__ import annotations

from fastapi import APIRouter

from atlaslink.audit.endpoints import router as audit_router
from atlaslink.auth.endpoints import router as auth_router
from atlaslink.equipment.endpoints import router as equipment_router
from atlaslink.messages.endpoints import router as messages_router
from atlaslink.operations.endpoints import notifications_router
from atlaslink.operations.endpoints import router as requests_router
from atlaslink.operations.rules_endpoints import router as rules_router
from atlaslink.registry.endpoints import router as registry_router
from atlaslink.registry.io_endpoints import router as io_router

router = APIRouter()
router.include_router(auth_router)
router.include_router(registry_router)
router.include_router(io_router)
router.include_router(audit_router)
router.include_router(requests_router)
router.include_router(notifications_router)
router.include_router(rules_router)
router.include_router(messages_router)
router.include_router(equipment_router)
