from relcli.cli.app import main

main()
