"""Work orders and the tool audit on PostgreSQL (psycopg 3 and its async pool).

``migrate.upgrade`` creates and migrates the schema (``techassist db upgrade``);
``PostgresWorkOrders`` and ``PostgresAuditLog`` implement ``WorkOrders`` and
``AuditLog`` on a shared pool.
"""
