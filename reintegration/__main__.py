from reintegration.cli import main

main()
