"""Developer tools of the wechatpay-engine repository; run from a checkout, never installed.

``python -m tools.import_catalogue PATH`` regenerates ``endpoints/`` from the wechatpay-openapi
catalogue. Nothing here is part of the ``engine`` package or its wheel.
"""
