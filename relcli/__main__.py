from relcli.cli import main

main()
