"""NIF (Norwegian sports federation) integration: REST client, models, pure rules, queue consumer.

Nothing is imported here on purpose: importing ``shared.nif`` must stay free (cold start).
"""
