"""
The statistics schema of version 3 as it was released (before the protocol
tables), frozen here so that the upgrade to version 4 is tested from what
real files and databases hold.
"""

STATEMENTS = [
    'CREATE TABLE schema_version (version INTEGER NOT NULL)',
    'CREATE TABLE batches (node TEXT NOT NULL, run TEXT NOT NULL, seq BIGINT NOT NULL, written BIGINT NOT NULL, PRIMARY KEY (node, run, seq))',
    "CREATE TABLE peaks_5m (domain TEXT NOT NULL, bucket BIGINT NOT NULL, region TEXT NOT NULL, isp TEXT NOT NULL, kind TEXT NOT NULL DEFAULT 'websocket', node TEXT NOT NULL, peak BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (domain, bucket, region, isp, kind, node))",
    "CREATE TABLE traffic_5m (domain TEXT NOT NULL, bucket BIGINT NOT NULL, region TEXT NOT NULL, isp TEXT NOT NULL, kind TEXT NOT NULL DEFAULT 'websocket', client_bytes_in BIGINT NOT NULL DEFAULT 0, client_bytes_out BIGINT NOT NULL DEFAULT 0, client_frames_in BIGINT NOT NULL DEFAULT 0, client_frames_out BIGINT NOT NULL DEFAULT 0, client_messages_in BIGINT NOT NULL DEFAULT 0, client_messages_out BIGINT NOT NULL DEFAULT 0, origin_bytes_in BIGINT NOT NULL DEFAULT 0, origin_bytes_out BIGINT NOT NULL DEFAULT 0, origin_frames_in BIGINT NOT NULL DEFAULT 0, origin_frames_out BIGINT NOT NULL DEFAULT 0, origin_messages_in BIGINT NOT NULL DEFAULT 0, origin_messages_out BIGINT NOT NULL DEFAULT 0, opened BIGINT NOT NULL DEFAULT 0, closed BIGINT NOT NULL DEFAULT 0, session_ms BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (domain, bucket, region, isp, kind))",
    "CREATE TABLE statuses_5m (domain TEXT NOT NULL, bucket BIGINT NOT NULL, region TEXT NOT NULL, isp TEXT NOT NULL, kind TEXT NOT NULL DEFAULT 'websocket', status INTEGER NOT NULL, count BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (domain, bucket, region, isp, kind, status))",
    "CREATE TABLE closes_5m (domain TEXT NOT NULL, bucket BIGINT NOT NULL, region TEXT NOT NULL, isp TEXT NOT NULL, kind TEXT NOT NULL DEFAULT 'websocket', leg TEXT NOT NULL, code INTEGER NOT NULL, closed_by TEXT NOT NULL, count BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (domain, bucket, region, isp, kind, leg, code, closed_by))",
    "CREATE TABLE traffic_1h (domain TEXT NOT NULL, bucket BIGINT NOT NULL, region TEXT NOT NULL, isp TEXT NOT NULL, kind TEXT NOT NULL DEFAULT 'websocket', client_bytes_in BIGINT NOT NULL DEFAULT 0, client_bytes_out BIGINT NOT NULL DEFAULT 0, client_frames_in BIGINT NOT NULL DEFAULT 0, client_frames_out BIGINT NOT NULL DEFAULT 0, client_messages_in BIGINT NOT NULL DEFAULT 0, client_messages_out BIGINT NOT NULL DEFAULT 0, origin_bytes_in BIGINT NOT NULL DEFAULT 0, origin_bytes_out BIGINT NOT NULL DEFAULT 0, origin_frames_in BIGINT NOT NULL DEFAULT 0, origin_frames_out BIGINT NOT NULL DEFAULT 0, origin_messages_in BIGINT NOT NULL DEFAULT 0, origin_messages_out BIGINT NOT NULL DEFAULT 0, opened BIGINT NOT NULL DEFAULT 0, closed BIGINT NOT NULL DEFAULT 0, session_ms BIGINT NOT NULL DEFAULT 0, peak_concurrent BIGINT NOT NULL DEFAULT 0, peak_client_bytes_in BIGINT NOT NULL DEFAULT 0, peak_client_bytes_out BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (domain, bucket, region, isp, kind))",
    "CREATE TABLE statuses_1h (domain TEXT NOT NULL, bucket BIGINT NOT NULL, region TEXT NOT NULL, isp TEXT NOT NULL, kind TEXT NOT NULL DEFAULT 'websocket', status INTEGER NOT NULL, count BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (domain, bucket, region, isp, kind, status))",
    "CREATE TABLE closes_1h (domain TEXT NOT NULL, bucket BIGINT NOT NULL, region TEXT NOT NULL, isp TEXT NOT NULL, kind TEXT NOT NULL DEFAULT 'websocket', leg TEXT NOT NULL, code INTEGER NOT NULL, closed_by TEXT NOT NULL, count BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (domain, bucket, region, isp, kind, leg, code, closed_by))",
    "CREATE TABLE traffic_1d (domain TEXT NOT NULL, bucket BIGINT NOT NULL, region TEXT NOT NULL, isp TEXT NOT NULL, kind TEXT NOT NULL DEFAULT 'websocket', client_bytes_in BIGINT NOT NULL DEFAULT 0, client_bytes_out BIGINT NOT NULL DEFAULT 0, client_frames_in BIGINT NOT NULL DEFAULT 0, client_frames_out BIGINT NOT NULL DEFAULT 0, client_messages_in BIGINT NOT NULL DEFAULT 0, client_messages_out BIGINT NOT NULL DEFAULT 0, origin_bytes_in BIGINT NOT NULL DEFAULT 0, origin_bytes_out BIGINT NOT NULL DEFAULT 0, origin_frames_in BIGINT NOT NULL DEFAULT 0, origin_frames_out BIGINT NOT NULL DEFAULT 0, origin_messages_in BIGINT NOT NULL DEFAULT 0, origin_messages_out BIGINT NOT NULL DEFAULT 0, opened BIGINT NOT NULL DEFAULT 0, closed BIGINT NOT NULL DEFAULT 0, session_ms BIGINT NOT NULL DEFAULT 0, peak_concurrent BIGINT NOT NULL DEFAULT 0, peak_client_bytes_in BIGINT NOT NULL DEFAULT 0, peak_client_bytes_out BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (domain, bucket, region, isp, kind))",
    "CREATE TABLE statuses_1d (domain TEXT NOT NULL, bucket BIGINT NOT NULL, region TEXT NOT NULL, isp TEXT NOT NULL, kind TEXT NOT NULL DEFAULT 'websocket', status INTEGER NOT NULL, count BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (domain, bucket, region, isp, kind, status))",
    "CREATE TABLE closes_1d (domain TEXT NOT NULL, bucket BIGINT NOT NULL, region TEXT NOT NULL, isp TEXT NOT NULL, kind TEXT NOT NULL DEFAULT 'websocket', leg TEXT NOT NULL, code INTEGER NOT NULL, closed_by TEXT NOT NULL, count BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (domain, bucket, region, isp, kind, leg, code, closed_by))",
    'CREATE INDEX peaks_5m_bucket ON peaks_5m (bucket)',
    'CREATE INDEX traffic_5m_bucket ON traffic_5m (bucket)',
    'CREATE INDEX statuses_5m_bucket ON statuses_5m (bucket)',
    'CREATE INDEX closes_5m_bucket ON closes_5m (bucket)',
    'CREATE INDEX traffic_1h_bucket ON traffic_1h (bucket)',
    'CREATE INDEX statuses_1h_bucket ON statuses_1h (bucket)',
    'CREATE INDEX closes_1h_bucket ON closes_1h (bucket)',
    'CREATE INDEX traffic_1d_bucket ON traffic_1d (bucket)',
    'CREATE INDEX statuses_1d_bucket ON statuses_1d (bucket)',
    'CREATE INDEX closes_1d_bucket ON closes_1d (bucket)',
    'CREATE TABLE billing_changes (domain TEXT NOT NULL, changed_ms BIGINT NOT NULL, method TEXT NOT NULL, cycle TEXT NOT NULL, node TEXT NOT NULL, PRIMARY KEY (domain, changed_ms, node))',
]
