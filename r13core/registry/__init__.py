"""The registry: npm's package semantics, one module per job (docs/registry-api.md).

``from r13core.registry import Registry`` is what the app uses; the façade
and the listeners' :class:`PackageChange` are in ``service``, the documents it
answers with (:class:`Rendered`, :class:`BlobRef`) in ``render``.
"""

from r13core.registry.advisories import SEVERITIES, AuditLimits
from r13core.registry.changes import OwnerCheck
from r13core.registry.publish_checks import PublishPlan
from r13core.registry.render import ABBREVIATED_FIELDS, BlobRef, Rendered
from r13core.registry.service import Listener, PackageChange, Registry
from r13core.semver import Version
from r13core.tarball import Limits

__all__ = [
    "ABBREVIATED_FIELDS",
    "SEVERITIES",
    "AuditLimits",
    "BlobRef",
    "Limits",
    "Listener",
    "OwnerCheck",
    "PackageChange",
    "PublishPlan",
    "Registry",
    "Rendered",
    "Version",
]
