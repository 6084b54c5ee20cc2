"""Run history full of identifiers (Graph paging and delta tokens, SharePoint drive and item ids, Blob
FileLocators and markers, Dataverse paging cookies, ETags, row versions, tracking headers), with
secrets only the entropy stage can find and providers' documentation examples as decoys: the bodies
of the precision test (tests/e2e/test_precision.py)."""
from __future__ import annotations

import base64
import json
from email.utils import formatdate
from urllib.parse import quote

from .. import fakes
from ..model import TICKS_PER_SECOND, Body, P
from .base import RECURRENCE, SHAREPOINT_API, RunBuilder, Template, after, connector_host, definition, run_host

GRAPH = "https://graph.microsoft.com/v1.0"
BLOB_API = "/providers/Microsoft.PowerApps/apis/shared_azureblob"
DATAVERSE_API = "/providers/Microsoft.PowerApps/apis/shared_commondataserviceforapps"
GRAPH_MSI = {"type": "ManagedServiceIdentity", "audience": "https://graph.microsoft.com"}
FIRST_NAMES = ("Megan", "Adele", "Alex", "Diego", "Isaiah", "Johanna", "Lidia", "Nestor", "Patti", "Pradeep")



def _graph_headers(b: RunBuilder) -> dict:
    """Headers of a Graph response as run history records them (ids and diagnostics, no secret)."""
    return {"Content-Type": "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;"
                            "charset=utf-8",
            "request-id": b.guid(), "client-request-id": b.guid(),
            "x-ms-ags-diagnostic": json.dumps({"ServerInfo": {"DataCenter": "West Europe", "Slice": "E",
                                                              "Ring": "5", "ScaleUnit": "003",
                                                              "RoleInstance": "AM2PEPF0001" + str(b.rng.randint(1000, 9999))}}),
            "x-ms-resource-unit": "1", "X-Azure-Ref": b.decoy(fakes.azure_ref(b.rng)),
            "Date": formatdate(b.clock / TICKS_PER_SECOND, usegmt=True)}


class GraphFiles(Template):
    """SharePoint file trigger (drive / item ids, `{Identifier}`), Graph calls whose paging links carry
    skip and delta tokens (a drive listing, the directory, a mailbox with change keys); a vendor access
    key pasted into a file's description, which only the entropy stage can find."""
    name = "graph_files"
    connectors = ("shared_sharepointonline",)
    display_names = ("Index new contracts", "Contract review intake", "Sync library to HR")

    def setup(self, rng, flow, tenant):
        return {"site": "https://contoso-fake.sharepoint.com/sites/Legal", "library": fakes.guid(rng),
                "drive": fakes.drive_id(rng), "mailbox": f"legal{rng.randint(1, 9)}@contoso-fake.example"}

    def _calls(self, s: dict) -> dict:
        return {"List_children": f"{GRAPH}/drives/{s['drive']}/root:/Contracts:/children?$top=3",
                "List_users": f"{GRAPH}/users?$top=3&$select=id,displayName,mail",
                "Users_delta": f"{GRAPH}/users/delta?$select=displayName,mail",
                "Get_mail": f"{GRAPH}/users/{s['mailbox']}/messages?$top=2&$select=subject,changeKey"}

    def definition(self, flow, tenant):
        s = flow.static
        actions, prev = {}, None
        for name, uri in self._calls(s).items():
            actions[name] = {"type": "Http", "inputs": {"uri": uri, "method": "GET", "authentication": GRAPH_MSI},
                             **after(prev)}
            prev = name
        return definition(
            {"When_a_file_is_created": {"type": "OpenApiConnection", "recurrence": {"frequency": "Minute", "interval": 5},
                                        "inputs": {"host": connector_host(SHAREPOINT_API, "shared_sharepointonline",
                                                                          "GetOnNewFileItems"),
                                                   "parameters": {"dataset": s["site"], "table": s["library"]}},
                                        "splitOn": "@triggerOutputs()?['body/value']"}},
            actions)

    def _drive_item(self, b: RunBuilder, s: dict, name: str) -> dict:
        rng, item_guid = b.rng, fakes.guid(b.rng)
        return {"@odata.etag": b.decoy(fakes.graph_etag(rng, item_guid)), "id": b.decoy(fakes.drive_item_id(rng)),
                "name": name, "eTag": fakes.graph_etag(rng, item_guid), "cTag": fakes.graph_etag(rng, item_guid, True),
                "createdDateTime": b.iso(), "lastModifiedDateTime": b.iso(), "size": rng.randint(20_000, 900_000),
                "webUrl": f"{s['site']}/Shared%20Documents/Contracts/{quote(name)}",
                "createdBy": {"user": {"email": f"{rng.choice(FIRST_NAMES).lower()}@contoso-fake.example",
                                       "id": b.guid(), "displayName": rng.choice(FIRST_NAMES)}},
                "parentReference": {"driveType": "documentLibrary", "driveId": b.decoy(s["drive"]),
                                    "id": b.decoy(fakes.drive_item_id(rng)), "name": "Contracts",
                                    "path": f"/drives/{s['drive']}/root:/Contracts",
                                    "siteId": f"contoso-fake.sharepoint.com,{b.guid()},{b.guid()}"},
                "file": {"mimeType": "application/pdf", "hashes": {"quickXorHash": b.decoy(fakes.quick_xor_hash(rng))}},
                "shared": {"scope": "users"}}

    def run(self, b):
        s, rng = b.flow.static, b.rng
        calls = self._calls(s)
        n = rng.randint(1, 999)
        name = f"MSA-{rng.randint(1000, 9999)}-{rng.choice(('Fabrikam', 'Northwind', 'Litware'))}"
        plants, description = [], "Countersigned copy, filed by Legal."
        if rng.random() < 0.6:  # a maker pasted the vendor portal's access key into the file's description
            secret = fakes.random_secret(rng)
            description = f"Countersigned copy. Vendor portal access for the renewal: {secret} (do not share)"
            plants = [P("random_secret", secret, description)]
        item = {"@odata.etag": f'"{rng.randint(1, 9)}"', "ItemInternalId": str(n), "ID": n, "Modified": b.iso(),
                "Created": b.iso(), "Editor": {"Claims": "i:0#.f|membership|megan@contoso-fake.example",
                                               "DisplayName": "Megan Bowen", "Email": "megan@contoso-fake.example"},
                "Description": description,
                "{Identifier}": f"Shared%2bDocuments%252fContracts%252f{quote(name)}.pdf", "{IsFolder}": False,
                "{Link}": f"{s['site']}/Shared%20Documents/Contracts/{quote(name)}.pdf", "{Name}": name,
                "{FilenameWithExtension}": f"{name}.pdf", "{Path}": "Shared Documents/Contracts/",
                "{FullPath}": f"Shared Documents/Contracts/{name}.pdf",
                "{ContentTypeId}": "0x010100" + fakes.hex_id(rng).upper(),
                "{DriveId}": b.decoy(s["drive"]), "{DriveItemId}": b.decoy(fakes.drive_item_id(rng)),
                "{ItemId}": n, "{VersionNumber}": "1.0"}
        b.trigger("When_a_file_is_created", "OpenApiConnection",
                  Body({"host": run_host(SHAREPOINT_API, "shared_sharepointonline", "GetOnNewFileItems"),
                        "parameters": {"dataset": s["site"], "table": s["library"]}}),
                  Body({"headers": {"Content-Type": "application/json; charset=utf-8", "x-ms-request-id": b.guid(),
                                    "x-ms-apihub-cached-response": "true", "x-ms-apihub-obo": "false",
                                    "X-Azure-Ref": b.decoy(fakes.azure_ref(rng))},
                        "body": item}, *plants))

        def call(action: str, body: dict) -> None:
            b.action(action, "Http", Body({"uri": calls[action], "method": "GET", "authentication": GRAPH_MSI}),
                     Body({"statusCode": 200, "headers": _graph_headers(b), "body": body}))

        items = [self._drive_item(b, s, f"{name}-{i}.pdf") for i in range(3)]
        token = b.decoy(fakes.sharepoint_skiptoken(items[-1]["name"], rng.randint(10, 900)))
        call("List_children", {"@odata.context": f"{GRAPH}/$metadata#drives('{quote(s['drive'], safe='')}')/root/children",
                               "@odata.nextLink": f"{calls['List_children']}&$skiptoken={token}", "value": items})
        users = [{"id": b.guid(), "displayName": f"{first} {rng.choice(('Bowen', 'Vance', 'Wilber'))}",
                  "mail": f"{first.lower()}@contoso-fake.example"} for first in rng.sample(FIRST_NAMES, 3)]
        dir_token = b.decoy(fakes.directory_skiptoken(rng, users[-1]["mail"]))
        call("List_users", {"@odata.context": f"{GRAPH}/$metadata#users(id,displayName,mail)",
                            "@odata.nextLink": f"{calls['List_users']}&$skiptoken={quote(dir_token, safe='')}",
                            "value": users})
        delta = b.decoy(fakes.delta_token(rng))
        call("Users_delta", {"@odata.context": f"{GRAPH}/$metadata#users(displayName,mail)",
                             "@odata.deltaLink": f"{GRAPH}/users/delta?$deltatoken={delta}",
                             "value": [{"id": u["id"], "displayName": u["displayName"]} for u in users]})
        mails = []
        for _ in range(2):
            ck = b.decoy(fakes.change_key(rng))
            mid = b.decoy("AAMkAG" + base64.b64encode(rng.randbytes(105)).decode().replace("+", "-").replace("/", "_"))
            mails.append({"@odata.etag": f'W/"{ck}"', "id": mid, "changeKey": ck,
                          "subject": f"Contract {name} ready for review",
                          "conversationId": b.decoy("AAQkAG" + base64.b64encode(rng.randbytes(45)).decode()),
                          "internetMessageId": f"<{fakes.hex_id(rng, 24)}@contoso-fake.example>"})
        call("Get_mail", {"@odata.context": f"{GRAPH}/$metadata#users('{quote(s['mailbox'])}')/messages(subject,changeKey)",
                          "value": mails})


def _blob_meta(b: RunBuilder, path: str) -> dict:
    """Azure Blob connector BlobMetadata: `Id` and `FileLocator` are base64 of the encoded path."""
    locator = b.decoy(fakes.blob_file_locator(path))
    name = path.rsplit("/", 1)[-1]
    return {"Id": locator, "Name": name, "DisplayName": name, "Path": path, "LastModified": b.iso(),
            "Size": b.rng.randint(20_000, 400_000), "MediaType": "text/csv", "IsFolder": False,
            "ETag": b.decoy(fakes.etag(b.rng)), "FileLocator": locator, "LastModifiedBy": None}


class BlobArchive(Template):
    """Azure Blob trigger (`Id` / `FileLocator` / ETag), Get blob content (a CSV `$content`, Content-MD5,
    CRC64, x-ms-* headers), List blobs (`nextPageMarker`), a child flow (workflow tracking headers); a
    manifest Compose carrying a generated delivery key (only entropy finds it) and the Azurite docs'
    development connection string (a documentation example: a decoy)."""
    name = "blob_archive"
    connectors = ("shared_azureblob",)
    display_names = ("Archive invoices", "Blob to records", "Nightly scan archive")

    def setup(self, rng, flow, tenant):
        return {"account": fakes.storage_account_name(rng), "child": fakes.guid(rng),
                "settings": {"IsEncrypted": False, "Values": {"AzureWebJobsStorage": "UseDevelopmentStorage=true",
                                                              "ArchiveStorage": fakes.AZURITE_CONNECTION}}}

    def definition(self, flow, tenant):
        s = flow.static
        blob = lambda op, params, prev: {"type": "OpenApiConnection", "inputs": {  # noqa: E731
            "host": connector_host(BLOB_API, "shared_azureblob", op), "parameters": params}, **after(prev)}
        return definition(
            {"When_a_blob_is_added_or_modified": {
                "type": "OpenApiConnection", "recurrence": {"frequency": "Minute", "interval": 3},
                "inputs": {"host": connector_host(BLOB_API, "shared_azureblob", "GetOnUpdatedFiles_V2"),
                           "parameters": {"dataset": "AccountNameFromSettings", "folderId": "JTJmaW52b2ljZXM="}},
                "splitOn": "@triggerOutputs()?['body']"}},
            {"Get_blob_content": blob("GetFileContent_V2", {"dataset": "AccountNameFromSettings",
                                                            "id": "@triggerOutputs()?['body/Id']"}, None),
             "List_blobs": blob("ListFolder_V4", {"dataset": "AccountNameFromSettings", "id": "JTJmaW52b2ljZXM="},
                                "Get_blob_content"),
             "Compose_manifest": {"type": "Compose", "inputs": {"files": "@body('List_blobs')?['value']"},
                                  **after("List_blobs")},
             "Compose_local_settings": {"type": "Compose", "inputs": s["settings"], **after("Compose_manifest")},
             "Run_a_Child_Flow": {"type": "Workflow", "inputs": {"host": {"workflowReferenceName": s["child"]},
                                                                 "body": {"files": "@outputs('Compose_manifest')"}},
                                  **after("Compose_local_settings")}})

    def run(self, b):
        s, rng = b.flow.static, b.rng
        year = rng.randint(2024, 2026)
        paths = [f"/invoices/{year}/Inv-{rng.randint(1000, 9999)}.csv" for _ in range(3)]
        meta = _blob_meta(b, paths[0])
        b.trigger("When_a_blob_is_added_or_modified", "OpenApiConnection",
                  Body({"host": run_host(BLOB_API, "shared_azureblob", "GetOnUpdatedFiles_V2"),
                        "parameters": {"dataset": "AccountNameFromSettings", "folderId": "JTJmaW52b2ljZXM="}}),
                  Body({"headers": {"Content-Type": "application/json; charset=utf-8", "x-ms-request-id": b.guid(),
                                    "x-ms-apihub-cached-response": "false"}, "body": meta}))
        blob_headers = {"Content-Type": "text/csv", "Content-MD5": b.decoy(fakes.md5_b64(rng)),
                        "x-ms-content-crc64": b.decoy(fakes.crc64_b64(rng)), "ETag": meta["ETag"],
                        "x-ms-request-id": b.guid(), "x-ms-client-request-id": b.guid(), "x-ms-version": "2021-08-06",
                        "x-ms-blob-type": "BlockBlob", "x-ms-lease-status": "unlocked", "x-ms-server-encrypted": "true",
                        "x-ms-creation-time": formatdate(b.clock / TICKS_PER_SECOND, usegmt=True)}
        b.action("Get_blob_content", "OpenApiConnection",
                 Body({"host": run_host(BLOB_API, "shared_azureblob", "GetFileContent_V2"),
                       "parameters": {"dataset": "AccountNameFromSettings", "id": meta["Id"]}}),
                 Body({"statusCode": 200, "headers": blob_headers,
                       "body": {"$content-type": "text/csv",
                                "$content": base64.b64encode(fakes.invoice_csv(rng).encode()).decode()}}))
        listing = [_blob_meta(b, p) for p in paths]
        marker = b.decoy(fakes.blob_next_marker(f"invoices/{year}/Inv-9999.csv"))
        b.action("List_blobs", "OpenApiConnection",
                 Body({"host": run_host(BLOB_API, "shared_azureblob", "ListFolder_V4"),
                       "parameters": {"dataset": "AccountNameFromSettings", "id": "JTJmaW52b2ljZXM="}}),
                 Body({"statusCode": 200, "headers": {"Content-Type": "application/json", "x-ms-request-id": b.guid()},
                       "body": {"value": listing, "nextPageMarker": marker}}))
        manifest = {"container": "invoices", "count": len(listing),
                    "files": [{k: m[k] for k in ("Name", "FileLocator", "ETag", "Size")} for m in listing]}
        plants = []
        if rng.random() < 0.6:  # the archive partner's delivery key, generated once and pasted in
            secret = fakes.random_secret(rng)
            manifest["delivery"] = {"endpoint": "https://archive.partner-fake.example/v1/drop", "handoff": secret}
            plants = [P("random_secret", secret, secret)]
        b.action("Compose_manifest", "Compose", Body(manifest, *plants), Body(manifest, *plants))
        b.decoy(fakes.AZURITE_KEY)
        b.action("Compose_local_settings", "Compose", Body(s["settings"]), Body(s["settings"]))
        b.action("Run_a_Child_Flow", "Workflow",
                 Body({"host": {"workflowReferenceName": s["child"]}, "body": {"files": manifest["files"]}}),
                 Body({"statusCode": 200, "headers": {
                     "x-ms-workflow-run-id": f"0858{rng.randint(10**24, 10**25 - 1)}CU{rng.randint(1, 99)}",
                     "x-ms-workflow-name": s["child"], "x-ms-workflow-id": b.decoy(fakes.hex_id(rng)),
                     "x-ms-workflow-system-id": fakes.workflow_system_id(b.flow.workflow_hex),
                     "x-ms-workflow-version": f"08584{rng.randint(10**14, 10**15 - 1)}",
                     "x-ms-tracking-id": b.guid(), "x-ms-correlation-id": b.guid(),
                     "x-ms-client-tracking-id": b.header.client_tracking_id,
                     "x-ms-request-id": f"{b.guid()}:{rng.randint(1, 9)}"},
                     "body": {"archived": len(listing)}}))


class DataverseRows(Template):
    """Dataverse List rows (a paging cookie in `@odata.nextLink`, weak ETags, row versions, an entity
    image, lookup annotations), Update a row; a migration note holding a generated partner key (only
    entropy finds it) and a Compose of the AWS CLI docs' example profile (documentation examples:
    decoys)."""
    name = "dataverse_rows"
    connectors = ("shared_commondataserviceforapps",)
    display_names = ("Accounts to ERP", "Refresh partner accounts", "CRM nightly export")
    SELECT = "name,accountnumber,description,versionnumber"
    DEV_PROFILE = {"readme": ("Local development: run `aws configure` and enter\n[default]\n"
                              f"aws_access_key_id = {fakes.AWS_DOC_KEY_ID}\n"
                              f"aws_secret_access_key = {fakes.AWS_DOC_SECRET}\nregion = us-west-2\n"),
                   "sample": {"accessKeyId": fakes.AWS_DOC_KEY_ID, "secretAccessKey": fakes.AWS_DOC_SECRET}}

    def setup(self, rng, flow, tenant):
        return {"org": f"https://orgfake{fakes.pick(rng, '0123456789abcdef', 6)}.crm4.dynamics.com"}

    def definition(self, flow, tenant):
        dv = lambda op, params, prev: {"type": "OpenApiConnection", "inputs": {  # noqa: E731
            "host": connector_host(DATAVERSE_API, "shared_commondataserviceforapps", op), "parameters": params}, **after(prev)}
        return definition(RECURRENCE, {
            "List_rows": dv("ListRecords", {"entityName": "accounts", "$select": self.SELECT, "$top": 3}, None),
            "Update_a_row": dv("UpdateRecord", {"entityName": "accounts",
                                                "recordId": "@first(body('List_rows')?['value'])?['accountid']",
                                                "item/description": "Synced to ERP"}, "List_rows"),
            "Compose_dev_profile": {"type": "Compose", "inputs": self.DEV_PROFILE, **after("Update_a_row")}})

    def run(self, b):
        s, rng, t = b.flow.static, b.rng, b.tenant
        api = f"{s['org']}/api/data/v9.1"
        plants, rows = [], []
        for i in range(3):
            account, image_id = b.guid(), b.guid()
            note = "Key account; renewal in Q3."
            if i == 1 and rng.random() < 0.6:  # a generated partner key kept in the notes during a migration
                secret = fakes.random_secret(rng)
                note = f"Migrated from the legacy CRM. Partner API handoff {secret}, rotate after go-live."
                plants.append(P("random_secret", secret, note))
            rows.append({
                "@odata.etag": b.decoy(fakes.dataverse_etag(rng)), "accountid": account,
                "name": rng.choice(("Fabrikam", "Northwind Traders", "Litware", "Contoso Pharma")),
                "accountnumber": f"ACC-{rng.randint(10000, 99999)}", "description": note,
                # the old CRM's record key: short, random-looking, not a secret (a low-confidence
                # candidate: reported only with --min-confidence low)
                "new_legacyref": b.decoy(fakes.pick(rng, fakes.ALNUM, 24)),
                "versionnumber": rng.randint(1_000_000, 9_999_999_999), "modifiedon": b.iso(),
                "_ownerid_value": b.guid(),
                "_ownerid_value@OData.Community.Display.V1.FormattedValue": "Megan Bowen",
                "_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname": "systemuser",
                "entityimage": b.decoy(fakes.png_thumbnail(rng)), "entityimageid": image_id,
                "entityimage_timestamp": rng.randint(10**17, 10**18),
                "entityimage_url": f"/Image/download.aspx?Entity=account&Attribute=entityimage&Id={image_id}",
                "ItemInternalId": account})
        cookie = fakes.dataverse_paging_cookie(rng, "account", rows[0]["accountid"], rows[-1]["accountid"])
        body = {"@odata.context": f"{api}/$metadata#accounts({self.SELECT})",
                "@Microsoft.Dynamics.CRM.totalrecordcount": -1,
                "@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded": False,
                "@Microsoft.Dynamics.CRM.globalmetadataversion": str(rng.randint(10**7, 10**8)),
                "@Microsoft.Dynamics.CRM.fetchxmlpagingcookie": cookie,
                "@odata.nextLink": f"{api}/accounts?$select={self.SELECT}&$skiptoken={quote(cookie, safe='')}",
                "value": rows}
        headers = {"OData-Version": "4.0", "Preference-Applied": "odata.include-annotations=\"*\"",
                   "x-ms-service-request-id": b.guid(), "REQ_ID": b.guid(),
                   "x-ms-ratelimit-burst-remaining-xrm-requests": str(rng.randint(5000, 5999)),
                   "x-ms-ratelimit-time-remaining-xrm-requests": f"{rng.randint(1100, 1200)},00",
                   "X-Azure-Ref": b.decoy(fakes.azure_ref(rng)), "Content-Type": "application/json; odata.metadata=full"}
        b.trigger("Recurrence", "Recurrence")
        b.action("List_rows", "OpenApiConnection",
                 Body({"host": run_host(DATAVERSE_API, "shared_commondataserviceforapps", "ListRecords"),
                       "parameters": {"entityName": "accounts", "$select": self.SELECT, "$top": 3}}),
                 Body({"statusCode": 200, "headers": headers, "body": body}, *plants))
        updated = rows[0]
        b.action("Update_a_row", "OpenApiConnection",
                 Body({"host": run_host(DATAVERSE_API, "shared_commondataserviceforapps", "UpdateRecord"),
                       "parameters": {"entityName": "accounts", "recordId": updated["accountid"],
                                      "item/description": "Synced to ERP"}}),
                 Body({"statusCode": 200, "headers": {**headers, "ETag": fakes.dataverse_etag(rng)},
                       "body": {"@odata.context": f"{api}/$metadata#accounts/$entity",
                                "@odata.etag": b.decoy(fakes.dataverse_etag(rng)), "accountid": updated["accountid"],
                                "versionnumber": updated["versionnumber"] + 1, "description": "Synced to ERP"}}))
        b.decoy(fakes.AWS_DOC_KEY_ID)
        b.decoy(fakes.AWS_DOC_SECRET)
        b.action("Compose_dev_profile", "Compose", Body(self.DEV_PROFILE), Body(self.DEV_PROFILE))
