"""DescribeAcls (29), CreateAcls (30), DeleteAcls (31): the ACLs of ``kafka_broker/acl.py``, as
Apache Kafka's ``kafka-acls`` tool manages them.  Without an authorizer they answer
SECURITY_DISABLED, as Kafka does."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kafka_protocol.errors import ErrorCode as E

from .acl import Acl, AclFilter

if TYPE_CHECKING:
    from .broker import Broker
    from .server import RequestContext

DISABLED = "No Authorizer is configured on the broker"


def handle_describe_acls(b: Broker, ctx: RequestContext, req: Any) -> Any:
    from kafka_protocol.messages import DescribeAclsResponse as R

    az = b.authorizer
    if az is None:
        return R(error_code=E.SECURITY_DISABLED, error_message=DISABLED, resources=[])
    f = AclFilter(req.resource_type_filter, req.resource_name_filter, req.pattern_type_filter,
                  req.principal_filter, req.host_filter, req.operation, req.permission_type)
    by_resource: dict[tuple[int, str, int], list[Acl]] = {}
    for a in az.describe(f):
        by_resource.setdefault((a.resource_type, a.name, a.pattern), []).append(a)
    return R(error_code=0, error_message=None, resources=[
        R.DescribeAclsResource(resource_type=t, resource_name=n, pattern_type=pt, acls=[
            R.DescribeAclsResource.AclDescription(principal=a.principal, host=a.host, operation=a.operation,
                                                  permission_type=a.permission) for a in acls])
        for (t, n, pt), acls in by_resource.items()])


def handle_create_acls(b: Broker, ctx: RequestContext, req: Any) -> Any:
    from kafka_protocol.messages import CreateAclsResponse as R

    az = b.authorizer
    if az is None:
        return R(results=[R.AclCreationResult(error_code=E.SECURITY_DISABLED, error_message=DISABLED)
                          for _ in req.creations])

    async def run() -> Any:
        acls = [Acl(c.resource_type, c.resource_name, c.resource_pattern_type, c.principal, c.host, c.operation,
                    c.permission_type) for c in req.creations]
        res = await az.create(acls)
        return R(results=[R.AclCreationResult(error_code=code, error_message=msg) for code, msg in res])
    return run()


def handle_delete_acls(b: Broker, ctx: RequestContext, req: Any) -> Any:
    from kafka_protocol.messages import DeleteAclsResponse as R

    FR = R.DeleteAclsFilterResult
    az = b.authorizer
    if az is None:
        return R(filter_results=[FR(error_code=E.SECURITY_DISABLED, error_message=DISABLED, matching_acls=[])
                                 for _ in req.filters])

    async def run() -> Any:
        filters = [AclFilter(f.resource_type_filter, f.resource_name_filter, f.pattern_type_filter, f.principal_filter,
                             f.host_filter, f.operation, f.permission_type) for f in req.filters]
        gone = await az.delete(filters)
        return R(filter_results=[FR(error_code=0, error_message=None, matching_acls=[
            FR.DeleteAclsMatchingAcl(error_code=0, error_message=None, resource_type=a.resource_type,
                                     resource_name=a.name, pattern_type=a.pattern, principal=a.principal,
                                     host=a.host, operation=a.operation, permission_type=a.permission)
            for a in g]) for g in gone])
    return run()


def handlers() -> dict[int, tuple[int, int, Any]]:
    return {29: (1, 3, handle_describe_acls), 30: (1, 3, handle_create_acls), 31: (1, 3, handle_delete_acls)}
