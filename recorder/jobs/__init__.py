"""Post-call work on a shared PostgreSQL catalog: a procrastinate job queue any worker node takes from."""
