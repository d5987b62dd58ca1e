"""The growth team's tools: the loop's metrics per experiment variant with their confidence
intervals, the offline replay of candidate weights, and the report behind ``/growth`` and
``geo-engine growth report``. It reads what the loop wrote; nothing below imports it."""
