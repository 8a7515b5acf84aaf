"""Cloud-provider discovery (NETWORKING-024): AWS (:mod:`.aws`), Azure (:mod:`.azure`), GCP (:mod:`.gcp`).

Submodules are imported on demand so that, e.g., boto3 is only loaded when AWS discovery is used.
"""
