"""Validates a JUnit XML file against an XSD: `python3 validate_junit.py SCHEMA FILE`.

Exit 0 if valid; 1 with the reason if not; 3 if the xmlschema package is missing
(`pip install xmlschema`)."""
import sys

try:
    import xmlschema
except ImportError:
    print("the python package xmlschema is missing: pip install xmlschema", file=sys.stderr)
    sys.exit(3)

schema = xmlschema.XMLSchema(sys.argv[1])
try:
    schema.validate(sys.argv[2])
except xmlschema.XMLSchemaValidationError as e:
    print(f"invalid: {e.reason} at {e.path}", file=sys.stderr)
    sys.exit(1)
print("valid")
