from assembly.cli import app

app(prog_name="medledger")
