"""Unit tests on the parsed Bicep templates: the properties a security review reads first, plus
the cross-file checks a Bicep compiler would do (module paths and parameters, .bicepparam
parameters) as far as we can do them without one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from devtools import infra_check as ic
from devtools.infra_check import FUNCTIONAPP_BICEP, INFRA, MAIN_BICEP, ROOT

MODULES = INFRA / "modules"

# Built-in roles this template may grant, and nothing broader.
NARROW_ROLES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": "Key Vault Secrets Officer",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
}
BROAD_ROLES = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
    "17d1049b-9a84-46fb-8f53-869881c3d3ab": "Storage Account Contributor",
    "00482a5a-887f-4fb3-b363-3b7fe8e74483": "Key Vault Administrator",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": "User Access Administrator",
}
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def one(resource_type: str) -> tuple[Path, dict]:
    found = ic.resources_of_type(resource_type)
    assert len(found) == 1, f"expected one {resource_type}, found {[(str(p), n) for p, n, _ in found]}"
    path, _, res = found[0]
    return path, res["config"]


def module_config(module: dict) -> dict:
    config = module["config"]
    return config["config"] if "condition" in config and "config" in config else config


def main_modules() -> dict[str, dict]:
    return ic.parse_bicep(MAIN_BICEP)["modules"]


# --- storage -------------------------------------------------------------------------------------
def test_storage_account_is_locked_down():
    _, cfg = one("Microsoft.Storage/storageAccounts")
    props = cfg["properties"]
    assert props["minimumTlsVersion"] == "TLS1_2"
    assert props["allowBlobPublicAccess"] is False
    assert props["allowSharedKeyAccess"] is False
    assert props["supportsHttpsTrafficOnly"] is True
    assert props["defaultToOAuthAuthentication"] is True
    assert props["allowCrossTenantReplication"] is False


def test_deployment_container_is_private_and_used_by_flex():
    _, cfg = one("Microsoft.Storage/storageAccounts/blobServices/containers")
    assert cfg["properties"]["publicAccess"] == "None"
    outputs = ic.parse_bicep(MODULES / "storage.bicep")["outputs"]
    assert "deploymentContainerUrl" in outputs


# --- key vault -------------------------------------------------------------------------------------
def test_key_vault_is_rbac_mode_with_purge_protection():
    _path, cfg = one("Microsoft.KeyVault/vaults")
    props = cfg["properties"]
    assert props["enableRbacAuthorization"] is True
    assert "accessPolicies" not in props, "RBAC mode: no access policies"
    assert props["enableSoftDelete"] is True
    assert props["enablePurgeProtection"] is True
    assert props["enabledForTemplateDeployment"] is False


def test_key_vault_audit_log_goes_to_log_analytics():
    found = [
        (p, n)
        for p, n, r in ic.resources_of_type("Microsoft.Insights/diagnosticSettings")
        if r["config"]["scope"] == "vault"
    ]
    assert found, "Key Vault needs a diagnostic setting (audit) to Log Analytics"


def test_no_secret_values_are_created_by_the_templates():
    assert not ic.resources_of_type("Microsoft.KeyVault/vaults/secrets"), "secret values never live in templates"


# --- function app ----------------------------------------------------------------------------------
def test_plan_is_flex_consumption():
    _, cfg = one("Microsoft.Web/serverfarms")
    assert cfg["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    assert cfg["properties"]["reserved"] is True  # Linux


def site_config() -> dict:
    path, cfg = one("Microsoft.Web/sites")
    assert path == FUNCTIONAPP_BICEP
    return cfg


def test_site_is_python_311_on_linux_with_https_only_and_no_ftp():
    cfg = site_config()
    assert "functionapp" in cfg["kind"] and "linux" in cfg["kind"]
    props = cfg["properties"]
    assert props["httpsOnly"] is True
    assert props["siteConfig"]["minTlsVersion"] == "1.2"
    assert props["siteConfig"]["ftpsState"] == "Disabled"
    assert props["functionAppConfig"]["runtime"] == {"name": "python", "version": "3.13"}
    policies = {
        r["config"]["name"]: r["config"]["properties"]["allow"]
        for _, _, r in ic.resources_of_type("Microsoft.Web/sites/basicPublishingCredentialsPolicies")
    }
    assert policies == {"ftp": False, "scm": False}


def test_site_runs_as_the_user_assigned_identity_everywhere():
    cfg = site_config()
    assert cfg["identity"]["type"] == "UserAssigned"
    assert [ic.key(k) for k in cfg["identity"]["userAssignedIdentities"]] == ["${identityId}"]
    props = cfg["properties"]
    assert props["keyVaultReferenceIdentity"] == "identityId"
    auth = props["functionAppConfig"]["deployment"]["storage"]["authentication"]
    assert auth == {"type": "UserAssignedIdentity", "userAssignedIdentityResourceId": "identityId"}


def test_host_storage_is_identity_based():
    platform = ic.variable(FUNCTIONAPP_BICEP, "platformSettings")
    assert platform["AzureWebJobsStorage__credential"] == "managedidentity"
    assert platform["AzureWebJobsStorage__clientId"] == "identityClientId"
    assert platform["AZURE_CLIENT_ID"] == "identityClientId"
    for service in ("blob", "queue", "table"):
        assert f"AzureWebJobsStorage__{service}ServiceUri" in platform
    settings = ic.app_settings()
    assert "AzureWebJobsStorage" not in settings, "a connection string would need the (disabled) account key"
    for forbidden in ("FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "WEBSITE_RUN_FROM_PACKAGE"):
        assert forbidden not in settings, f"{forbidden} is not allowed on Flex Consumption"


def test_worker_thread_pool_holds_what_the_host_hands_an_instance():
    """Every function is sync: the worker's thread pool (default cores + 4) must hold the export
    work items host.json lets one instance run (batchSize + newBatchThreshold) with room for HTTP
    calls and the Service Bus batch, or they queue inside the worker behind exports."""
    import json

    queues = json.loads((ROOT / "host.json").read_text())["extensions"]["queues"]
    threads = int(ic.variable(FUNCTIONAPP_BICEP, "platformSettings")["PYTHON_THREADPOOL_THREAD_COUNT"])
    assert threads >= queues["batchSize"] + queues["newBatchThreshold"] + 8


def test_data_tables_use_the_identity_not_a_connection_string():
    settings = ic.variable(MAIN_BICEP, "appSettings")
    assert "DATA_TABLES_CONNECTION" not in settings
    endpoint = settings["DATA_TABLES_ENDPOINT"]
    assert "tableEndpoint" in repr(endpoint), endpoint


def test_application_insights_uses_entra_id():
    _, cfg = one("Microsoft.Insights/components")
    assert cfg["properties"]["DisableLocalAuth"] is True
    assert "WorkspaceResourceId" in cfg["properties"]
    platform = ic.variable(FUNCTIONAPP_BICEP, "platformSettings")
    assert platform["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "ClientId=${identityClientId};Authorization=AAD"


def test_no_literal_secrets_in_app_settings():
    for name, value in ic.app_settings().items():
        if isinstance(value, str):
            assert not re.search(r"(?i)(accountkey|sharedaccesskey|password|secret)=", value), name


# --- role assignments --------------------------------------------------------------------------------
def _all_role_guids() -> set[str]:
    text = "\n".join(p.read_text() for p in ic.bicep_files())
    return {g for g in GUID.findall(text.lower())}


def test_only_narrow_built_in_roles_are_granted():
    guids = _all_role_guids()
    broad = {NARROW_ROLES.get(g, BROAD_ROLES.get(g, g)) for g in guids & set(BROAD_ROLES)}
    assert not broad, f"broad roles granted: {broad}"
    unknown = guids - set(NARROW_ROLES)
    assert not unknown, f"role ids not on the narrow list (add with a reason, or use a narrower role): {unknown}"


def test_app_identity_gets_exactly_the_roles_it_needs():
    roles = ic.variable(MAIN_BICEP, "roles")
    modules = main_modules()
    storage = module_config(modules["storageAccess"])["params"]
    assert ic.dotted(storage["principalId"]) == "identity.outputs.principalId"
    granted = {roles[ic.dotted(r).split(".", 1)[1]] for r in storage["roleDefinitionIds"]}
    assert {NARROW_ROLES[g] for g in granted} == {
        "Storage Blob Data Owner",
        "Storage Queue Data Contributor",
        "Storage Table Data Contributor",
    }
    kv = module_config(modules["keyVaultAccess"])["params"]
    assert ic.dotted(kv["principalId"]) == "identity.outputs.principalId"
    assert NARROW_ROLES[roles[ic.dotted(kv["roleDefinitionId"]).split(".", 1)[1]]] == "Key Vault Secrets User"
    mon = ic.variable(MODULES / "monitoring-access.bicep", "monitoringMetricsPublisher")
    assert NARROW_ROLES[mon] == "Monitoring Metrics Publisher"


def test_operator_grant_is_optional_and_only_secrets_officer():
    op = main_modules()["operatorKeyVaultAccess"]
    assert "condition" in op["config"], "the deploying principal's grant must be conditional on principalId"
    roles = ic.variable(MAIN_BICEP, "roles")
    role = ic.dotted(module_config(op)["params"]["roleDefinitionId"])
    assert NARROW_ROLES[roles[role.split(".", 1)[1]]] == "Key Vault Secrets Officer"


def test_role_assignments_are_scoped_and_deterministic():
    found = ic.resources_of_type("Microsoft.Authorization/roleAssignments")
    assert len(found) >= 3
    for path, name, res in found:
        cfg = res["config"]
        cfg = cfg.get("config", cfg) if "loop_type" in cfg else cfg
        assert cfg["name"]["function"]["type"] == "guid", f"{path.name}:{name}"
        assert cfg.get("scope"), f"{path.name}:{name} must be scoped to one resource"


def test_app_waits_for_its_role_assignments():
    depends = module_config(main_modules()["functionApp"]).get("dependsOn", [])
    assert {"storageAccess", "keyVaultAccess", "monitoringAccess"} <= set(depends), depends


# --- what a compiler would check across files ----------------------------------------------------------
@pytest.mark.parametrize("name", sorted(ic.parse_bicep(MAIN_BICEP)["modules"]))
def test_module_paths_and_parameters_match(name):
    module = main_modules()[name]
    target = INFRA / module["detail"]["path"]
    assert target.exists(), target
    declared = ic.parse_bicep(target).get("parameters", {})
    given = set(module_config(module)["params"])
    unknown = given - set(declared)
    assert not unknown, f"{name}: {target.name} has no parameters {sorted(unknown)}"
    required = {p for p, spec in declared.items() if spec.get("default") is None}
    missing = required - given
    assert not missing, f"{name}: required parameters not passed: {sorted(missing)}"


@pytest.mark.parametrize("path", ic.bicepparam_files(), ids=lambda p: p.name)
def test_bicepparam_matches_main_parameters(path):
    parsed = ic.parse_bicepparam(path)
    assert (path.parent / parsed["using"]).resolve() == MAIN_BICEP
    declared = ic.parse_bicep(MAIN_BICEP)["parameters"]
    unknown = set(parsed["params"]) - set(declared)
    assert not unknown, f"{path.name}: main.bicep has no parameters {sorted(unknown)}"
    required = {p for p, spec in declared.items() if spec.get("default") is None}
    missing = required - set(parsed["params"])
    assert not missing, f"{path.name}: required parameters not set: {sorted(missing)}"


def test_prod_sizing_differs_from_dev():
    dev = ic.parse_bicepparam(INFRA / "dev.bicepparam")["params"]
    prod = ic.parse_bicepparam(INFRA / "prod.bicepparam")["params"]
    assert dev["storageSkuName"] == "Standard_LRS" and prod["storageSkuName"] == "Standard_ZRS"
    assert prod["logRetentionDays"] >= dev["logRetentionDays"]


def test_resource_names_fit_azure_limits():
    """uniqueString() is 13 characters: check the name patterns against the length limits."""
    token = "a" * 13
    abbrs = ic.variable(MAIN_BICEP, "abbrs")
    assert len(abbrs["storageAccount"] + token) <= 24
    assert len(abbrs["keyVault"] + token) <= 24
    assert re.fullmatch(r"[a-z0-9]{3,24}", abbrs["storageAccount"] + token)
    container = ic.variable(MAIN_BICEP, "deploymentContainerName")
    assert container.startswith("app-package-${take(functionAppName, 32)}")
    assert len("app-package-" + "f" * 32 + "-" + "a" * 7) <= 63


def test_azd_wiring():
    azure_yaml = (ROOT / "azure.yaml").read_text()
    assert re.search(r"(?m)^services:\s*\n\s+api:\s*$", azure_yaml), "service `api`"
    assert re.search(r"(?m)^\s+language:\s*python\s*$", azure_yaml)
    assert re.search(r"(?m)^\s+host:\s*function\s*$", azure_yaml)
    assert re.search(r"(?m)^\s+provider:\s*bicep\s*$", azure_yaml)
    tags = {ic.key(k): v for k, v in ic.variable(MAIN_BICEP, "tags").items()}
    assert tags["azd-env-name"] == "environmentName"
    site = site_config()
    assert "azd-service-name" in repr(site["tags"])
    assert module_config(main_modules()["functionApp"])["params"]["serviceName"] == "api"
    outputs = ic.parse_bicep(MAIN_BICEP)["outputs"]
    assert "FUNCTION_APP_URL" in outputs and "AZURE_KEY_VAULT_NAME" in outputs
    assert ic.parse_bicep(MAIN_BICEP)["globals"]["scope"]["value"] == "subscription"


SECRET_PATTERNS = [
    re.compile(
        r"(?i)AccountKey=(?!Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==)[A-Za-z0-9+/=]{20,}"
    ),
    re.compile(r"(?i)SharedAccessKey=(?!SAS_KEY_VALUE)[A-Za-z0-9+/=]{20,}"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\."),
    re.compile(r"(?i)InstrumentationKey=[0-9a-f-]{36}"),
]


def test_no_secret_values_in_templates_or_deploy_docs():
    files = [*ic.bicep_files(), *ic.bicepparam_files(), ROOT / "azure.yaml", ROOT / "local.settings.json.example"]
    files += [p for p in (ROOT / "docs" / "deploy.md",) if p.exists()]
    hits = [
        f"{p.relative_to(ROOT)}: {m.group(0)[:30]}"
        for p in files
        for rx in SECRET_PATTERNS
        for m in rx.finditer(p.read_text())
    ]
    assert not hits, hits
