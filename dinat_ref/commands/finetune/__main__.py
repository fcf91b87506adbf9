"""``python -m dinat_ref.commands.finetune`` / ``torchrun -m dinat_ref.commands.finetune``."""

from dinat_ref.commands.finetune import main

raise SystemExit(main())
