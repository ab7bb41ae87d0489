"""Byte-level evidence formats shared by the gate and any independent auditor.

Standard library, ``cryptography`` and ``rfc8785`` only: ``clearance.audit.verify`` depends on this
package and nothing else of clearance. ``orjson`` is used when it is installed (``_accel``), as an
accelerator that never changes a byte, and is never required.
"""
