"""Byte-level evidence formats shared by the gate and any independent auditor.

Standard library, ``cryptography`` and ``rfc8785`` only: ``clearance.audit.verify`` depends on this
package and nothing else of clearance.
"""
